//! Who is in a [`Chat`](super::Chat): connection ids mapped to unique display names.

use std::collections::{BTreeMap, HashSet};

use super::clean::MAX_NAME_CHARS;

/// Most names listed in a roster message; a bigger room still reports its real `count`.
/// Bounds the size of each join/leave notice, which goes to everyone.
pub const MAX_LISTED_USERS: usize = 200;

/// Ids grow with acceptance order, so a `BTreeMap` keyed by id lists users by joining order.
#[derive(Debug, Default)]
pub(crate) struct Room {
    users: BTreeMap<u64, String>,
    guests: u64,
}

impl Room {
    /// Adds connection `id` under `wanted` (already cleaned; empty for a guest) and returns the
    /// name it got, unique ignoring case among this room and `elsewhere` (the lower-cased names
    /// in use on other nodes).
    pub(crate) fn join(&mut self, id: u64, wanted: &str, elsewhere: &HashSet<String>) -> String {
        let base = if wanted.is_empty() {
            // Each node numbers its own guests: skip the numbers other nodes already use, so a
            // cluster does not end up with "Guest 1" and "Guest 1 2". Ends: `elsewhere` is finite.
            loop {
                self.guests += 1;
                let guest = format!("Guest {}", self.guests);
                if !elsewhere.contains(&guest.to_lowercase()) {
                    break guest;
                }
            }
        } else {
            wanted.to_string()
        };
        let mut name = base.clone();
        let mut n = 2u64;
        while self.taken(&name) || elsewhere.contains(&name.to_lowercase()) {
            let suffix = format!(" {n}");
            let keep = MAX_NAME_CHARS.saturating_sub(suffix.chars().count());
            let stem: String = base.chars().take(keep).collect();
            name = format!("{}{suffix}", stem.trim_end());
            n += 1;
        }
        self.users.insert(id, name.clone());
        name
    }

    fn taken(&self, name: &str) -> bool {
        let lower = name.to_lowercase();
        self.users.values().any(|n| n.to_lowercase() == lower)
    }

    /// Removes `id`; false if it was not in the room.
    pub(crate) fn leave(&mut self, id: u64) -> bool {
        self.users.remove(&id).is_some()
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.users.values().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(room: &mut Room, id: u64, wanted: &str) -> String {
        room.join(id, wanted, &HashSet::new())
    }

    #[test]
    fn names_are_made_unique_ignoring_case() {
        let mut room = Room::default();
        assert_eq!(join(&mut room, 1, "Ada"), "Ada");
        assert_eq!(join(&mut room, 2, "ada"), "ada 2");
        assert_eq!(join(&mut room, 3, "Ada"), "Ada 3");
        assert!(room.leave(1));
        assert_eq!(join(&mut room, 4, "Ada"), "Ada");
        assert!(!room.leave(99));
    }

    #[test]
    fn guests_are_numbered() {
        let mut room = Room::default();
        assert_eq!(join(&mut room, 1, ""), "Guest 1");
        assert_eq!(join(&mut room, 2, ""), "Guest 2");
        assert_eq!(room.names().collect::<Vec<_>>(), ["Guest 1", "Guest 2"]);
    }

    #[test]
    fn suffixed_names_stay_within_the_limit() {
        let mut room = Room::default();
        let long = "x".repeat(MAX_NAME_CHARS);
        join(&mut room, 1, &long);
        let second = join(&mut room, 2, &long);
        assert_eq!(second.chars().count(), MAX_NAME_CHARS);
        assert!(second.ends_with(" 2"));
    }

    #[test]
    fn names_used_on_other_nodes_are_taken() {
        let mut room = Room::default();
        let elsewhere: HashSet<String> = ["ada", "guest 1", "guest 2"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(room.join(1, "ADA", &elsewhere), "ADA 2");
        assert_eq!(room.join(2, "", &elsewhere), "Guest 3");
        assert_eq!(room.join(3, "", &elsewhere), "Guest 4");
        assert_eq!(room.join(4, "Bob", &elsewhere), "Bob");
    }
}
