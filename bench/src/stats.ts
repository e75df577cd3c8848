/**
 * Latency recording without per-sample allocation (so the recorder does not distort RSS or GC): a histogram with
 * 0.25 µs buckets up to 100 ms and a small overflow list beyond.
 */

const resolutionMicros = 0.25
const histogramMicros = 100_000
const buckets = Math.ceil(histogramMicros / resolutionMicros)

export class Recorder {
  private readonly counts = new Uint32Array(buckets)
  private overflow: Array<number> = []
  count = 0

  /** Records one latency in milliseconds. */
  record(millis: number): void {
    const micros = millis * 1000
    this.count++
    if (micros < histogramMicros) this.counts[Math.floor(micros / resolutionMicros)]!++
    else this.overflow.push(micros)
  }

  reset(): void {
    this.counts.fill(0)
    this.overflow = []
    this.count = 0
  }

  /** The p-quantile (0..1) in milliseconds; NaN when empty. */
  quantile(p: number): number {
    if (this.count === 0) return Number.NaN
    const rank = Math.min(this.count - 1, Math.floor(p * this.count))
    let seen = 0
    for (let i = 0; i < buckets; i++) {
      seen += this.counts[i]!
      if (seen > rank) return ((i + 0.5) * resolutionMicros) / 1000
    }
    const sorted = [...this.overflow].sort((a, b) => a - b)
    return sorted[Math.min(sorted.length - 1, rank - seen)]! / 1000
  }
}

export const median = (values: ReadonlyArray<number>): number => {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (finite.length === 0) return Number.NaN
  const mid = Math.floor(finite.length / 2)
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2
}

export const quantileOf = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}

/** High-resolution wall-clock time in epoch milliseconds, comparable across processes on one machine. */
export const wallNow = (): number => performance.timeOrigin + performance.now()

/** Formats a number for the table: thousands separators for large values, 2–3 significant digits for small. */
export const fmt = (value: number | undefined, digits?: number): string => {
  if (value === undefined || !Number.isFinite(value)) return "—"
  if (digits !== undefined) return value.toFixed(digits)
  const abs = Math.abs(value)
  if (abs >= 1000) return Math.round(value).toLocaleString("en-US")
  if (abs >= 100) return value.toFixed(0)
  if (abs >= 10) return value.toFixed(1)
  if (abs >= 1) return value.toFixed(2)
  return value.toFixed(3)
}

export const fmtRatio = (value: number | undefined): string =>
  value === undefined || !Number.isFinite(value) ? "—" : `${value.toFixed(2)}×`
