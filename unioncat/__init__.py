"""unioncat"""
