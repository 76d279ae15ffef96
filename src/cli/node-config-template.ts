/**
 * The hasup.toml that `hasup cluster create|join` writes for a node: just
 * what makes `hasup run --config FILE` work, with every other key left to
 * its documented default (docs/config.md). Pure, so it can be tested by
 * parsing its output with the real schema.
 */
export interface NodeConfigTemplateInput {
  clusterName: string;
  advertise: string;
  /** Members to join through; empty on the founding member. */
  peers: string[];
  stateDir: string;
  secrets: string;
  /** Only when the ring key is not in the secrets file. */
  ringKey?: string;
  etcdVoters: number;
  services: string[];
  /** For the header comment. */
  writtenBy: 'create' | 'join';
}

/** TOML basic strings accept JSON's escapes for everything JSON.stringify produces. */
const str = (v: string) => JSON.stringify(v);
const list = (vs: string[]) => `[${vs.map(str).join(', ')}]`;

export function renderNodeConfig(input: NodeConfigTemplateInput): string {
  return [
    `# hasup.toml of member ${input.advertise} in cluster ${input.clusterName}, written by \`hasup cluster ${input.writtenBy}\`.`,
    '# Every key and its default: docs/config.md (or `hasup config reference`).',
    '',
    '[member]',
    `advertise = ${str(input.advertise)}`,
    `peers = ${list(input.peers)}`,
    `state_dir = ${str(input.stateDir)}`,
    '# Cluster secrets (mode 0600): ring key, API token, PostgreSQL passwords.',
    `secrets = ${str(input.secrets)}`,
    ...(input.ringKey ? [`ring_key = ${str(input.ringKey)}`] : []),
    '',
    '[cluster]',
    '# The first members (3 or 5) run etcd voting members; later members are etcd clients.',
    `etcd_voters = ${input.etcdVoters}`,
    '',
    '[services]',
    '# Plans started at the first start (e.g. ["postgresql"]); etcd is started by the cluster formation.',
    `load = ${list(input.services)}`,
    '',
  ].join('\n');
}
