/**
 * The service-config rumor: a versioned TOML document for one service group
 * (`hasup config apply SVC.GROUP VERSION FILE`), key SVC.GROUP. Every member
 * applies the highest version the ring holds: the ring's own merge (the
 * higher version wins the slot) is the whole rule, and the supervisor refuses
 * a version that is not newer than the one in force. The document is checked
 * by the member that publishes it and again by each that applies it.
 */
export const RUMOR_SERVICE_CONFIG = 'service-config';

export interface ServiceConfigRumor {
  serviceGroup: string;
  version: number;
  toml: string;
}

/** The rumor for `toml` as version `version` of `serviceGroup`, ready for the ring. */
export function serviceConfigRumor(serviceGroup: string, version: number, toml: string): { kind: string; key: string; version: number; payload: Uint8Array } {
  return { kind: RUMOR_SERVICE_CONFIG, key: serviceGroup, version, payload: Buffer.from(toml) };
}

/**
 * A gossiped document, or undefined when the rumor is of another kind. The
 * TOML itself is not parsed here: the supervisor parses and validates it
 * when it applies it, and says why it refuses one. Never throws.
 */
export function decodeServiceConfigRumor(r: { kind?: string; key?: string; version?: number; payload?: Uint8Array }): ServiceConfigRumor | undefined {
  if (r.kind !== RUMOR_SERVICE_CONFIG) return undefined;
  return { serviceGroup: r.key ?? '', version: r.version ?? 0, toml: Buffer.from(r.payload ?? new Uint8Array()).toString('utf8') };
}
