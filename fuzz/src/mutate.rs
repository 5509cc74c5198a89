//! A small seeded mutator for the stable runner (test tooling, pure): the byte-level mutations
//! libFuzzer applies most (bit flips, interesting values, insertions, deletions, copies,
//! dictionary tokens, splices with another input), without coverage feedback. Deterministic for
//! a given seed, so a CI failure replays exactly.

/// A xorshift64* generator: fast, seedable, good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Values that often sit on boundaries.
const INTERESTING: &[u8] = &[
    0, 1, 0x1c, 0x1f, 0x3f, 0x40, 0x5c, 0x7f, 0x80, 0x81, 0xfe, 0xff,
];

/// Mutates inputs; holds the dictionary of its target.
#[derive(Debug, Clone)]
pub struct Mutator {
    rng: Rng,
    dictionary: Vec<Vec<u8>>,
    max_len: usize,
}

impl Mutator {
    /// A mutator seeded with `seed`, splicing `dictionary` tokens, growing inputs to `max_len`.
    pub fn new(seed: u64, dictionary: Vec<Vec<u8>>, max_len: usize) -> Self {
        Self {
            rng: Rng::new(seed),
            dictionary,
            max_len: max_len.max(1),
        }
    }

    /// The generator (the runner picks inputs with it).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Applies 1-8 random mutations to `input`; `other` is another input to splice from.
    pub fn mutate(&mut self, input: &mut Vec<u8>, other: &[u8]) {
        let rounds = 1 + self.rng.below(8);
        for _ in 0..rounds {
            self.mutate_once(input, other);
        }
        input.truncate(self.max_len);
    }

    fn mutate_once(&mut self, input: &mut Vec<u8>, other: &[u8]) {
        let r = &mut self.rng;
        if input.is_empty() {
            input.push(r.next_u64() as u8);
            return;
        }
        let at = r.below(input.len());
        match r.below(10) {
            0 => input[at] ^= 1 << r.below(8),
            1 => input[at] = INTERESTING[r.below(INTERESTING.len())],
            2 => input[at] = r.next_u64() as u8,
            3 => input[at] = input[at].wrapping_add(1 + r.below(3) as u8),
            4 => {
                let end = (at + 1 + r.below(16)).min(input.len());
                input.drain(at..end);
            }
            5 => {
                let n = 1 + r.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| r.next_u64() as u8).collect();
                input.splice(at..at, bytes);
            }
            6 => {
                // Copy a chunk of the input elsewhere in it (repeats lines, packets, fields).
                let from = r.below(input.len());
                let len = 1 + r.below((input.len() - from).min(64));
                let chunk = input[from..from + len].to_vec();
                let to = r.below(input.len() + 1);
                input.splice(to..to, chunk);
            }
            7 | 8 if !self.dictionary.is_empty() => {
                let token = self.dictionary[r.below(self.dictionary.len())].clone();
                if r.below(2) == 0 {
                    input.splice(at..at, token);
                } else {
                    let end = (at + token.len()).min(input.len());
                    input.splice(at..end, token);
                }
            }
            _ if !other.is_empty() => {
                // Splice: our head, their tail.
                let from = r.below(other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            _ => input.push(r.next_u64() as u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_mutants_bounded_length() {
        let run = |seed| {
            let mut m = Mutator::new(seed, vec![b"tok".to_vec()], 64);
            let mut input = b"hello world".to_vec();
            for _ in 0..200 {
                m.mutate(&mut input, b"other input");
                assert!(input.len() <= 64);
            }
            input
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
