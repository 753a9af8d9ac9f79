"""dbscan"""
