"""lyra.portfolio"""
