/**
 * A vitest global setup for Node 20: vitest 5's reporter prints failed tests with `Map.groupBy` (Node 21+), and on
 * Node 20 it crashes instead ("Map.groupBy is not a function"), hiding every failure. Global setups run in vitest's
 * own process, before any report; on Node 21+ this does nothing.
 */
interface MapConstructorWithGroupBy {
  groupBy?: <K, T>(items: Iterable<T>, key: (item: T, index: number) => K) => Map<K, Array<T>>
}

export default function setup(): void {
  const map = Map as unknown as MapConstructorWithGroupBy
  if (typeof map.groupBy === "function") return
  map.groupBy = <K, T>(items: Iterable<T>, key: (item: T, index: number) => K) => {
    const groups = new Map<K, Array<T>>()
    let index = 0
    for (const item of items) {
      const k = key(item, index++)
      const group = groups.get(k)
      if (group === undefined) groups.set(k, [item])
      else group.push(item)
    }
    return groups
  }
}
