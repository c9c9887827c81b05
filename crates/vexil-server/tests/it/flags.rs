//! Tests of flags (filled in this session).
