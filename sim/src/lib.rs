//! Fleet simulator for scale tests and `make demo`.
//!
//! Empty until the fleet-demo issue (#11) lands.
