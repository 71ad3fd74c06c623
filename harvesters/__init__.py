"""harvesters"""
