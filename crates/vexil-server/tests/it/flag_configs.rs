//! Tests of flag_configs (filled in this session).
