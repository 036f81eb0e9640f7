"""_query"""
