//! OpenCV `Net` and `CascadeClassifier` are not thread-safe. A pool lends each caller its own
//! instance (created on demand), so two workers detect in parallel without sharing one.

use super::AnonymizeError;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub(crate) struct Pool<K, T> {
    idle: Mutex<HashMap<K, Vec<T>>>,
}

impl<K: Eq + Hash + Copy, T> Pool<K, T> {
    pub(crate) fn new() -> Self {
        Self { idle: Mutex::new(HashMap::new()) }
    }

    /// Runs `f` with an instance for `key`, made by `make` when none is idle.
    pub(crate) fn with<R>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<T, AnonymizeError>,
        f: impl FnOnce(&mut T) -> Result<R, AnonymizeError>,
    ) -> Result<R, AnonymizeError> {
        let taken = self.lock().get_mut(&key).and_then(Vec::pop);
        let mut item = match taken {
            Some(item) => item,
            None => make()?,
        };
        let out = f(&mut item);
        // An instance whose call failed may hold broken state; drop it instead of reusing it.
        if out.is_ok() {
            self.lock().entry(key).or_default().push(item);
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Vec<T>>> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<K, T> std::fmt::Debug for Pool<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}
