/** @internal */
import * as Fs from "node:fs"
import * as Net from "node:net"

/** @internal */
export const HOST = "127.0.0.1"

/**
 * Ports are picked below the kernel's ephemeral range: a port from that range may be handed to an outgoing client
 * socket while a stopped server is down, and the server could then not come back on it.
 */
const candidateRange = (): readonly [number, number] => {
  try {
    const [low] = Fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number)
    if (low !== undefined && Number.isInteger(low) && low > 16_000) return [15_000, Math.min(low, 32_768)]
  } catch {
    // not Linux: 32768+ is the usual ephemeral start elsewhere too
  }
  return [15_000, 32_768]
}

const canListen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = Net.createServer()
    server.unref()
    server.once("error", () => resolve(false))
    server.listen({ host: HOST, port, exclusive: true }, () => server.close(() => resolve(true)))
  })

/**
 * A port that nobody listens on right now. The caller still has to handle losing the race for it.
 *
 * @internal
 */
export const findFreePort = async (): Promise<number> => {
  const [low, high] = candidateRange()
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low))
    if (await canListen(port)) return port
  }
  // A crowded range: let the kernel choose.
  return new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.unref()
    server.once("error", reject)
    server.listen({ host: HOST, port: 0, exclusive: true }, () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
}
