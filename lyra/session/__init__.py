"""lyra.session"""
