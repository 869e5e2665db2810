"""Image layers on disk: decompression, whiteouts and confined extraction.

`runtime.unpack` is the entry point, and the modules here are its parts.
`compression` finds the format, inflates and computes the diff ID.
`whiteouts` maps entry names and OCI whiteouts, `tree` writes entries
inside the layer directory, `files` applies their metadata, and `lowers`
reads the layers below.
"""
