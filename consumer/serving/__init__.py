"""The live service: settings -> model, clients, pipeline, HTTP endpoints, poll loop, reload."""
