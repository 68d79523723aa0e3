"""The first study: "Docker-container serving architectures for real-time analysis" (registry: docker-serving).

``published`` holds their numbers, ``experiments`` the runs we set beside them,
``report`` its section of the report.
"""
