import { chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readMemberTls, TLS_DIR, writeMemberTls, type MemberTlsFiles } from './member-files.js';

/**
 * Each service reads the member's certificate and key from a copy of its
 * own, SVC_ROOT/tls, owned by its service user: PostgreSQL refuses a key
 * that another user owns unless root owns it with mode 0640, etcd and
 * Elasticsearch run as the service user too, and hasup's own copy in
 * STATE_DIR/tls stays readable by hasup alone.
 */
export function serviceTlsFiles(serviceRoot: string): MemberTlsFiles {
  const dir = join(serviceRoot, TLS_DIR);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'member.pem'), key: join(dir, 'member.key') };
}

/** Brings the service's copy up to date with the member's files (written only when they differ). Returns the copy's paths. */
export function installServiceTls(member: MemberTlsFiles, serviceRoot: string, owner?: { uid: number; gid: number }): MemberTlsFiles {
  const copy = serviceTlsFiles(serviceRoot);
  const content = readMemberTls(member);
  const same = (Object.keys(copy) as Array<keyof MemberTlsFiles>).every((k) => existsSync(copy[k]) && readFileSync(copy[k], 'utf8') === content[k]);
  const dir = join(serviceRoot, TLS_DIR);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (owner) chownSync(dir, owner.uid, owner.gid);
  if (!same) writeMemberTls(copy, content, owner);
  return copy;
}
