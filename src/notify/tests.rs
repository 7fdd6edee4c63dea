//! Tests of URL parsing, grouping and rendering, and of each service's
//! request format against a local receiver.
