/**
 * The data-dir lock with DATABASE_URL: `serve` still keeps worktrees and default workspaces in
 * its data dir, so a second one on the same dir exits 1 (services sharing a Postgres use a data
 * dir each); `migrate` does not touch the data dir and runs beside a service.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listening, troupeKilledAfter, type Proc } from '../support/cli.ts';
import { isolatedDatabase } from '../support/db.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const spawnTroupe = (args: string[], env: Record<string, string>): Proc => troupeKilledAfter(cleanups, args, env);

describe('one process per data dir, on Postgres', () => {
  it('a second serve on the same data dir exits 1 naming the holder; one on its own data dir serves; migrate runs beside them', async () => {
    const db = (await isolatedDatabase())!;
    cleanups.push(() => db.drop());
    const root = await mkdtemp(path.join(os.tmpdir(), 'troupe-lockpg-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const env = { DATABASE_URL: db.url };
    const shared = path.join(root, 'a');
    const first = spawnTroupe(['serve', '--port', '0', '--data-dir', shared], env);
    await listening(first);

    const second = spawnTroupe(['serve', '--port', '0', '--data-dir', shared], env);
    expect(await second.exit).toBe(1);
    expect(second.stderr()).toContain(`data dir ${shared} is in use by troupe pid ${first.child.pid}`);

    const other = spawnTroupe(['serve', '--port', '0', '--data-dir', path.join(root, 'b')], env);
    const url = await listening(other);
    expect((await fetch(`${url}/health`)).status).toBe(200);

    const migrate = spawnTroupe(['migrate'], { ...env, TROUPE_DATA_DIR: shared });
    expect(await migrate.exit).toBe(0);
    expect(migrate.stdout()).toMatch(/migrations applied \(postgres\)/);
  });
});
