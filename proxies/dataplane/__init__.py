"""The data path: client connections, exchanges, upstream connections and their pools."""
