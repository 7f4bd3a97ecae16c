/**
 * What the dashboard's browser tests stand on: the built page (built once here when `dist/web/` is
 * missing), the real app over a real test runtime listening on 127.0.0.1 (one runtime may be served
 * by several apps, e.g. with and without a token), and Debian's Chromium driven by playwright-core,
 * each page recording every request it makes so a test can prove none left the service's origin.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createApp } from '../../src/http/app.ts';
import { silentLogger } from '../../src/logger.ts';
import type { TestRuntime } from '../support/runtime.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const CHROMIUM = '/usr/bin/chromium';

/**
 * Builds the dashboard when its build is missing (a fresh checkout without `npm ci`). An older
 * build than its sources is used as it is (another test process may be serving it), with a warning.
 */
export async function ensureDashboardBuilt(): Promise<void> {
  const index = path.join(ROOT, 'dist/web/index.html');
  if (existsSync(index)) {
    const built = statSync(index).mtimeMs;
    const newer = readdirSync(path.join(ROOT, 'web'), { recursive: true, encoding: 'utf8' }).filter((f) => statSync(path.join(ROOT, 'web', f)).mtimeMs > built);
    if (newer.length) console.warn(`dist/web is older than web/ (${newer.slice(0, 3).join(', ')}…): the browser tests run the old build; run \`npm run build:web\``);
    return;
  }
  const { build } = await import('vite');
  await build({ configFile: path.join(ROOT, 'web/vite.config.ts'), logLevel: 'warn' });
  if (!existsSync(path.join(ROOT, 'dist/web/index.html'))) throw new Error('the dashboard build wrote no dist/web/index.html: run `npm run build:web` and read its errors');
}

export interface Served {
  origin: string;
  /** Ends every open event stream, as a restart or a dropped connection would. */
  closeStreams(): void;
  /** Runs before the app sees each request (to hold a reconnect, or answer in its place); null for none. */
  intercept: ((req: Request) => Promise<Response | void> | Response | void) | null;
  close(): Promise<void>;
}

/** The real app over `t`'s runtime, listening on an ephemeral loopback port. */
export async function serveApp(t: TestRuntime, opts: { apiToken?: string } = {}): Promise<Served> {
  const created = createApp({ runtime: t.runtime, bus: t.bus, logger: silentLogger, version: '0.1.0', apiToken: opts.apiToken });
  const fetch = async (req: Request) => {
    const answer = await served.intercept?.(req);
    return answer ?? created.app.fetch(req);
  };
  const server = await new Promise<Server>((resolve) => {
    const s: Server = serve({ fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s)) as Server;
  });
  const { port } = server.address() as AddressInfo;
  const served: Served = {
    intercept: null,
    origin: `http://127.0.0.1:${port}`,
    closeStreams: () => created.closeStreams(),
    async close() {
      created.closeStreams();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return served;
}

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export interface RecordedPage {
  page: Page;
  /** Every URL the page requested, in order. */
  requests: string[];
  /** Uncaught errors in the page's scripts. */
  errors: string[];
  close(): Promise<void>;
}

/** A page in a fresh context (its own sessionStorage), recording what it requests. */
export async function openPage(browser: Browser): Promise<RecordedPage> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  // A step that cannot happen fails with the locator it waited for, well before the test's timeout.
  page.setDefaultTimeout(20_000);
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(e.message));
  return { page, requests, errors, close: () => context.close() };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
