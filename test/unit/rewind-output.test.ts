import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endsAtFork } from '../../src/plugins/postgresql/replication-tools.js';

test("pg_rewind's failure on a target whose WAL ends at the fork point is told apart from a real failure", () => {
  // What pg_rewind 15 printed for a primary killed after its standby cluster had received everything.
  const atFork = 'pg_rewind: servers diverged at WAL location 0/7003668 on timeline 3\npg_rewind: error: could not find previous WAL record at 0/7003668: invalid record length at 0/7003668: wanted 24, got 0';
  assert.equal(endsAtFork(atFork), true);
  // The record missing somewhere else: WAL the target needs is gone, a real failure.
  assert.equal(endsAtFork('pg_rewind: servers diverged at WAL location 0/7003668 on timeline 3\npg_rewind: error: could not find previous WAL record at 0/6000028: invalid record length at 0/6000028: wanted 24, got 0'), false);
  assert.equal(endsAtFork('pg_rewind: servers diverged at WAL location 0/7003668 on timeline 3\npg_rewind: error: could not find previous WAL record at 0/7003668: invalid resource manager ID 200 at 0/7003668'), false);
  assert.equal(endsAtFork('pg_rewind: error: could not connect to server'), false);
});
