//! The per-call I/O shell around the call core: owns the sockets, provider streams, timers and store writes of one call; the live-call registry; shutdown draining.
