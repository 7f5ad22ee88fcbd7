//! The sans-IO call core: turn-taking, barge-in, fillers, dialogue policy and timeouts. Inputs in, outputs out, time passed in.
