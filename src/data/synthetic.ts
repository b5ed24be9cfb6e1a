// A synthetic corpus whose best achievable loss is known exactly: a first-order Markov chain. A model that
// sees the previous token can at best reach the chain's entropy rate, so "the model learns" becomes a
// number to compare against rather than a loss curve to eyeball.

import { mulberry32 } from "../util/random.ts";
export interface MarkovCorpusOptions {
  /** Number of symbols (token ids 0..vocab-1), at most 65536. */
  vocab: number;
  /** Next symbols allowed after each symbol (1..vocab). */
  k: number;
  /** Tokens to sample. */
  length: number;
  seed: number;
}

export interface MarkovCorpus {
  tokens: Uint16Array;
  /** Nats per token: sum_i pi_i H(row_i), pi the stationary distribution. */
  entropyRate: number;
}

interface SparseRow {
  next: number[];
  prob: number[];
}

export function makeMarkovCorpus({ vocab, k, length, seed }: MarkovCorpusOptions): MarkovCorpus {
  if (!Number.isInteger(vocab) || vocab < 1 || vocab > 65536) throw new Error(`vocab ${vocab} must be in 1..65536`);
  if (!Number.isInteger(k) || k < 1 || k > vocab) throw new Error(`k ${k} must be in 1..vocab (${vocab})`);
  const random = mulberry32(seed);
  const rows = randomTransitions(vocab, k, random);
  const pi = stationaryDistribution(rows);
  const entropyRate = rows.reduce((sum, row, i) => sum + pi[i] * entropy(row.prob), 0);

  const tokens = new Uint16Array(length);
  let state = sample(pi, random);
  for (let t = 0; t < length; t++) {
    tokens[t] = state;
    const row = rows[state];
    state = row.next[sample(row.prob, random)];
  }
  return { tokens, entropyRate };
}

/**
 * Row i allows i+1 (mod vocab) and k-1 other random symbols. The fixed successor makes the chain
 * irreducible, so its stationary distribution is unique and sampling "from stationarity" is well defined.
 * Probabilities are normalized exponentials, i.e. a draw from a flat Dirichlet.
 */
function randomTransitions(vocab: number, k: number, random: () => number): SparseRow[] {
  const rows: SparseRow[] = [];
  const others = new Uint32Array(vocab - 1);
  for (let i = 0; i < vocab; i++) {
    const successor = (i + 1) % vocab;
    // Partial Fisher-Yates over every symbol except the successor picks k-1 distinct others.
    for (let j = 0, s = 0; s < vocab; s++) if (s !== successor) others[j++] = s;
    const next = [successor];
    for (let j = 0; j < k - 1; j++) {
      const pick = j + Math.floor(random() * (vocab - 1 - j));
      [others[j], others[pick]] = [others[pick], others[j]];
      next.push(others[j]);
    }
    const weights = next.map(() => -Math.log(1 - random()));
    const total = weights.reduce((a, b) => a + b, 0);
    rows.push({ next, prob: weights.map((w) => w / total) });
  }
  return rows;
}

/**
 * Power iteration on the lazy chain (P + I) / 2: it has the same stationary distribution as P and
 * converges even when P is periodic.
 */
function stationaryDistribution(rows: SparseRow[]): Float64Array {
  const n = rows.length;
  let pi = new Float64Array(n).fill(1 / n);
  for (let iteration = 0; iteration < 10_000_000; iteration++) {
    const next = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const row = rows[i];
      next[i] += 0.5 * pi[i];
      for (let j = 0; j < row.next.length; j++) next[row.next[j]] += 0.5 * pi[i] * row.prob[j];
    }
    let change = 0;
    for (let i = 0; i < n; i++) change += Math.abs(next[i] - pi[i]);
    pi = next;
    if (change < 1e-12) return pi;
  }
  throw new Error("stationary distribution did not converge");
}

function entropy(prob: readonly number[]): number {
  return prob.reduce((h, p) => (p > 0 ? h - p * Math.log(p) : h), 0);
}

/** Index drawn with probability proportional to `prob` (which sums to 1). */
function sample(prob: ArrayLike<number>, random: () => number): number {
  const u = random();
  let cumulative = 0;
  for (let i = 0; i < prob.length; i++) {
    cumulative += prob[i];
    if (u < cumulative) return i;
  }
  return prob.length - 1; // u fell in the rounding gap below 1
}
