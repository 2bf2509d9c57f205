//! symptom-classifier
