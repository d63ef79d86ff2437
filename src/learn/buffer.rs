//! Experience replay: transitions from many episodes, sampled uniformly (seeded) for the
//! Q-learning updates, oldest dropped first once full.

use crate::policy::learned::features::COUNT;
use crate::rng::Rng;

/// One step: the chosen placement's features, its reward, and the next decision's best
/// candidates (empty at the end of an episode).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub features: [f64; COUNT],
    pub reward: f64,
    pub next: Vec<[f64; COUNT]>,
}

/// A bounded ring of transitions.
#[derive(Debug, Clone)]
pub struct Buffer {
    items: Vec<Transition>,
    capacity: usize,
    next: usize,
}

impl Buffer {
    pub fn new(capacity: usize) -> Self {
        Buffer {
            items: Vec::new(),
            capacity: capacity.max(1),
            next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(&mut self, t: Transition) {
        if self.items.len() < self.capacity {
            self.items.push(t);
        } else {
            self.items[self.next] = t;
            self.next = (self.next + 1) % self.capacity;
        }
    }

    /// `n` transitions drawn uniformly with replacement.
    pub fn sample<'a>(&'a self, rng: &mut Rng, n: usize) -> Vec<&'a Transition> {
        if self.items.is_empty() {
            return Vec::new();
        }
        (0..n)
            .map(|_| &self.items[rng.below(self.items.len())])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(r: f64) -> Transition {
        Transition {
            features: [0.0; COUNT],
            reward: r,
            next: Vec::new(),
        }
    }

    #[test]
    fn a_full_buffer_drops_the_oldest() {
        let mut b = Buffer::new(2);
        for r in [1.0, 2.0, 3.0] {
            b.push(t(r));
        }
        let mut rewards: Vec<f64> = b.items.iter().map(|t| t.reward).collect();
        rewards.sort_by(f64::total_cmp);
        assert_eq!(rewards, vec![2.0, 3.0]);
        let mut rng = Rng::new(1);
        assert_eq!(b.sample(&mut rng, 5).len(), 5);
    }
}
