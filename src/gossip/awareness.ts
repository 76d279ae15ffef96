/**
 * Lifeguard's local health multiplier. A member that keeps missing acks, or
 * has to refute suspicions about itself, is more likely slow itself (CPU
 * starved, network queue full) than surrounded by failures; it then probes
 * less often and waits longer for answers instead of accusing healthy peers.
 *
 * The score runs from 0 (healthy) to max - 1; timeouts are multiplied by
 * score + 1.
 */
export class Awareness {
  private value = 0;

  constructor(private readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new Error(`awareness max must be a positive integer, got ${max}`);
  }

  get score(): number {
    return this.value;
  }

  applyDelta(delta: number): void {
    this.value = Math.min(this.max - 1, Math.max(0, this.value + delta));
  }

  scale(ms: number): number {
    return ms * (this.value + 1);
  }
}
