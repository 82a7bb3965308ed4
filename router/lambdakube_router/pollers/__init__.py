"""Event source mappings: pollers that read a source and invoke a function (``source``)."""
