//! emergency-detector
