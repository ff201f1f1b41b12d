/** Reconnect delays: exponential growth capped at `maxMs`, with "full jitter" (a random delay
 * between half and all of the step) so many browsers do not reconnect in lockstep. */
export function backoffDelay(attempt: number, baseMs = 500, maxMs = 15_000, random = Math.random): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.round(step / 2 + random() * (step / 2));
}
