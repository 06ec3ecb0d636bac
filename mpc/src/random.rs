//! The randomness source: a ChaCha12 generator seeded from the operating system.

use rand::SeedableRng;
use rand::rngs::{StdRng, SysRng};

use crate::error::{Error, Result};

/// A cryptographically secure generator freshly seeded from the operating system's random
/// source (`getrandom`). Each protocol run seeds its own; nothing in the library seeds from a
/// fixed value.
pub(crate) fn os_rng() -> Result<StdRng> {
    StdRng::try_from_rng(&mut SysRng).map_err(|e| Error::Randomness(e.to_string()))
}
