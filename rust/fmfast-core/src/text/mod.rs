//! Streaming parsers of text inputs (libSVM/libFM, CSV rating triples).
