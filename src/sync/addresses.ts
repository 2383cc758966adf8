/**
 * Whether a host is a private address: loopback, private networks,
 * link-local, carrier-grade NAT, unspecified, multicast or reserved ranges,
 * and names that mean this machine ("localhost"). Discovery never dials
 * such a host announced by a remote unless the application allows it.
 * Runtime-agnostic: no DNS here (a runtime that can resolve names checks
 * what they resolve to when it connects).
 */

/** True for a private host, false for a public IP address, undefined for a name that needs resolving to tell. */
export function isPrivateHost(host: string): boolean | undefined {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '')
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  const v4 = parseIPv4(h)
  if (v4 !== undefined) return isPrivateIPv4(v4)
  if (h.includes(':')) return isPrivateIPv6(h)
  return undefined
}

/** True for an IP address (v4 or v6) in a private range; false for a public one or a string that is not an IP address. */
export function isPrivateIP(address: string): boolean {
  const v4 = parseIPv4(address)
  if (v4 !== undefined) return isPrivateIPv4(v4)
  return address.includes(':') ? isPrivateIPv6(address.toLowerCase()) : false
}

function parseIPv4(h: string): number[] | undefined {
  const parts = h.split('.')
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined
  return parts.map(Number)
}

function isPrivateIPv4([a, b]: number[]): boolean {
  return (
    a === 0 || // "this network"
    a === 10 ||
    (a === 100 && b >= 64 && b <= 127) || // carrier-grade NAT
    a === 127 ||
    (a === 169 && b === 254) || // link-local
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 0) || // IETF protocol assignments (and 192.0.2.0/24, documentation)
    (a === 192 && b === 168) ||
    (a === 198 && (b === 18 || b === 19)) || // benchmarking
    a >= 224 // multicast and reserved
  )
}

function isPrivateIPv6(h: string): boolean {
  const zone = h.indexOf('%')
  const address = zone === -1 ? h : h.slice(0, zone)
  // An IPv4 address written as IPv6 (::ffff:a.b.c.d, ::a.b.c.d) is what it embeds.
  const dotted = /:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(address)
  if (dotted) {
    const v4 = parseIPv4(dotted[1])
    return v4 === undefined || isPrivateIPv4(v4)
  }
  const groups = expandIPv6(address)
  if (groups === undefined) return true // not parseable: never dial it as public
  if (groups.every((g) => g === 0)) return true // ::
  if (groups.slice(0, 7).every((g) => g === 0) && groups[7] === 1) return true // ::1
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return isPrivateIPv4([groups[6] >> 8, groups[6] & 0xff]) // ::ffff:hex form
  }
  const first = groups[0]
  return (
    (first & 0xfe00) === 0xfc00 || // unique local fc00::/7
    (first & 0xffc0) === 0xfe80 || // link-local fe80::/10
    (first & 0xff00) === 0xff00 || // multicast
    (first === 0x2001 && groups[1] === 0x0db8) // documentation
  )
}

/** The eight 16-bit groups of an IPv6 address, or undefined. */
function expandIPv6(address: string): number[] | undefined {
  const halves = address.split('::')
  if (halves.length > 2) return undefined
  const head = halves[0] === '' ? [] : halves[0].split(':')
  const tail = halves.length === 2 && halves[1] !== '' ? halves[1].split(':') : []
  const missing = 8 - head.length - tail.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail]
  if (!all.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined
  return all.map((g) => parseInt(g, 16))
}
