import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseNodeConfig, tlsSettingsOf } from '../../src/supervisor/config-file.js';

test('[tls]: on by default, 365-day member certificates, no extra names', () => {
  const c = parseNodeConfig('', 'hasup.toml');
  assert.deepEqual(tlsSettingsOf(c), { enabled: true, memberDays: 365, extraSans: [] });
});

test('[tls]: the operator\'s own files (all three), extra names, off', () => {
  const own = parseNodeConfig('[tls]\nca_file = "/c/ca.pem"\ncert_file = "/c/m.pem"\nkey_file = "/c/m.key"\nextra_sans = ["10.0.0.100", "db.example.com"]\nmember_days = 90\n', 'hasup.toml');
  assert.deepEqual(tlsSettingsOf(own), { enabled: true, operator: { ca: '/c/ca.pem', cert: '/c/m.pem', key: '/c/m.key' }, memberDays: 90, extraSans: ['10.0.0.100', 'db.example.com'] });
  assert.equal(tlsSettingsOf(parseNodeConfig('[tls]\nenabled = false\n', 'hasup.toml')).enabled, false);
});

test('[tls]: the leader VIP is among the extra names, once', () => {
  const c = parseNodeConfig('[cluster]\nvip = "10.0.0.100/24"\nvip_interface = "eth0"\n[tls]\nextra_sans = ["10.0.0.100", "db.example.com"]\n', 'hasup.toml');
  assert.deepEqual(tlsSettingsOf(c).extraSans, ['10.0.0.100', 'db.example.com']);
  const v = parseNodeConfig('[cluster]\nvip = "10.0.0.100/24"\nvip_interface = "eth0"\n', 'hasup.toml');
  assert.deepEqual(tlsSettingsOf(v).extraSans, ['10.0.0.100']);
});

test('[tls]: bad input is refused naming the key', () => {
  assert.throws(() => parseNodeConfig('[tls]\nca_file = "/c/ca.pem"\n', 'hasup.toml'), /"tls.ca_file", "tls.cert_file" and "tls.key_file" go together/);
  assert.throws(() => parseNodeConfig('[tls]\nextra_sans = ["not a name!"]\n', 'hasup.toml'), /"not a name!" must be an IP address or a DNS name/);
  assert.throws(() => parseNodeConfig('[tls]\nmember_days = 0\n', 'hasup.toml'), /tls.member_days/);
  assert.throws(() => parseNodeConfig('[tls]\nenabled = "yes"\n', 'hasup.toml'), /"tls.enabled" must be true or false, got string "yes"/);
  assert.throws(() => parseNodeConfig('[tls]\nca = "/x"\n', 'hasup.toml'), /tls.ca/);
});
