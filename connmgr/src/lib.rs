//! Connection limits and a trimming connection manager for weft.
//!
//! Not built yet: this crate will hold what the line above says.
