"""lyra.ops"""
