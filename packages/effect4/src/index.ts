/**
 * @effect-pg-pool/effect4 — the Effect 4 edition (issue 13), being built: its modules are exported from here as they land.
 *
 * @since 0.1.0
 */
export {}
