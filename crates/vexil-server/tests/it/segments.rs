//! Tests of segments (filled in this session).
