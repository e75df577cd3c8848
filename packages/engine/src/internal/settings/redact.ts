/**
 * The one redaction: passwords in `postgres://` URLs, in `password=` (and `sslpassword=`) parameters, and every
 * occurrence of a known password in free text. Every message, issue and log line passes through here.
 *
 * @internal
 */

// `sslpassword` (the client key's passphrase) is a secret too, hence no word boundary before `password`.
const PASSWORD_PARAM = /(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)/gi

/** @internal */
export const redactUrl = (url: string): string => {
  const schemeEnd = url.indexOf("://")
  const start = schemeEnd === -1 ? 0 : schemeEnd + 3
  // The user info runs to the LAST "@" (as in `parseUrl`), so an unencoded "@", "/", "?" or "#" in a password is
  // still masked; a stray "@" further right only masks too much, never too little.
  const at = url.lastIndexOf("@")
  const colon = url.indexOf(":", start)
  const masked = at > start && colon !== -1 && colon < at ? url.slice(0, colon + 1) + "***" + url.slice(at) : url
  return masked.replace(PASSWORD_PARAM, "$1***")
}

const EMBEDDED_URL = /postgres(?:ql)?:\/\/[^\s'"<>]+/gi

/**
 * A password of a few characters is found everywhere ("p" in every path): masking each occurrence would garble
 * every line and tell a reader the password. Such a password is still masked where it stands as one: in URLs and
 * `password=` parameters.
 *
 * @internal
 */
export const minMaskedLength = 4

/** @internal */
export const redactText = (text: string, password: string | undefined): string => {
  let out = text
  if (password !== undefined && password.length >= minMaskedLength) {
    // Connection strings in driver errors carry the password percent-encoded.
    for (const form of new Set([password, encodeURIComponent(password)])) {
      out = out.split(form).join("***")
    }
  }
  return out.replace(EMBEDDED_URL, (url) => redactUrl(url)).replace(PASSWORD_PARAM, "$1***")
}

const URL_SCHEME = /postgres(?:ql)?:\/\//i
const PASSWORD_KEYWORD = /password\s*=/i

/**
 * A function removing from a string every given secret (plain or percent-encoded), the password of every
 * `postgres://` URL and every `password=` setting. The fast path returns strings holding none of them untouched,
 * which is what a log line almost always is.
 *
 * @internal
 */
export const makeRedactor = (secrets: ReadonlyArray<string>): ((text: string) => string) => {
  const kept = secrets.filter((s) => s !== "")
  const forms = [...new Set(kept.flatMap((s) => [s, encodeURIComponent(s)]))]
  return (text) => {
    let hit = URL_SCHEME.test(text) || PASSWORD_KEYWORD.test(text)
    for (let i = 0; !hit && i < forms.length; i++) hit = text.includes(forms[i]!)
    if (!hit) return text
    let out = redactText(text, undefined)
    for (const secret of kept) out = redactText(out, secret)
    return out
  }
}

const decode = (text: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/**
 * The passwords a `postgres://` URL carries: its user info's (which runs to the last `@`, as the parser reads it)
 * and its `password=` parameter's, decoded — what a redactor must also find in text that quotes them plainly.
 *
 * @internal
 */
export const passwordsInUrl = (url: string): Array<string> => {
  const out: Array<string> = []
  const scheme = /^\s*postgres(?:ql)?:\/\//i.exec(url)
  if (scheme !== null) {
    const rest = url.slice(scheme[0].length)
    const at = rest.lastIndexOf("@")
    const colon = rest.indexOf(":")
    if (at !== -1 && colon !== -1 && colon < at) out.push(decode(rest.slice(colon + 1, at)))
  }
  for (const match of url.matchAll(/[?&\s]password\s*=\s*('(?:[^'\\]|\\.)*'|[^&\s]*)/gi)) {
    const value = match[1]!
    out.push(value.startsWith("'") ? value.slice(1, -1).replace(/\\(.)/g, "$1") : decode(value))
  }
  return out.filter((s) => s !== "")
}
