//! treatment-retriever
