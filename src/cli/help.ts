/**
 * The help texts of `troupe` and its commands: plain strings, so `troupe --help` loads nothing else.
 */
import { VERSION } from '../package-files.ts';

export const DEFAULT_INSPECT_PORT = 8080;

export const HELP = `troupe ${VERSION} — a team of AI coding agents as XState actors

Usage:
  troupe serve [--port N] [--host H] [--data-dir D] [--inspect[=PORT]]
  troupe run PLAN.json [--workspace DIR] [--json]
  troupe demo [--json]
  troupe migrate
  troupe --version | --help

Commands:
  serve     Run the HTTP service (PGlite in ./.troupe by default, or DATABASE_URL).
  run       Run one plan in this process with live progress; exit 0 only if every task completed.
  demo      An offline end-to-end demo with a bundled scripted model: no API key, no network.
  migrate   Apply pending database migrations to DATABASE_URL (or the embedded PGlite) and exit.

Run 'troupe <command> --help' for a command's flags and examples.`;

export const SERVE_HELP = `Usage: troupe serve [--port N] [--host H] [--data-dir D] [--inspect[=PORT]]

Runs the Troupe service: migrations, then runs left active by a previous process resume,
then the HTTP API answers. SIGTERM/SIGINT stop it gracefully. One process per data dir: a
second one on a data dir in use exits 1 at once, naming the pid that holds it.

Flags:
  --port N          listen port (env PORT, default 3000; 0 picks a free one)
  --host H          listen address (env HOST, default 127.0.0.1; any other host needs TROUPE_API_TOKEN)
  --data-dir D      data directory: PGlite files, default workspaces, worktrees (env TROUPE_DATA_DIR, default ./.troupe)
  --inspect[=PORT]  start the Stately inspector bridge on PORT (default ${DEFAULT_INSPECT_PORT}; env TROUPE_INSPECT_PORT)

Examples:
  troupe serve
  troupe serve --port 8787 --data-dir /var/lib/troupe
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/troupe troupe serve --inspect`;

export const RUN_HELP = `Usage: troupe run PLAN.json [--workspace DIR] [--json]

Runs one plan in this process (PGlite in a temporary directory, or DATABASE_URL) with live
progress, and prints a summary. The plan is the project-create body of the API plus "tasks":

  {
    "name": "calc",
    "testCommand": "node --test",
    "workspace": "./calc",
    "tasks": [
      { "key": "add", "title": "add(a, b)", "description": "Create lib/add.js exporting add(a, b), with a node:test test." },
      { "key": "sum", "title": "sum(list)", "description": "Create lib/sum.js using add, with a test.", "dependsOn": ["add"] }
    ]
  }

("goal" instead of "tasks" lets the lead plan.) A relative workspace in the plan is relative to the
plan file; without one, a fresh git repository in a temporary directory is used (its path is
printed). Claude is called with ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL, if set).

Flags:
  --workspace DIR   work in DIR (created and git-initialised if missing), whatever the plan says
  --json            the run's events as JSON lines on stdout (the summary goes to stderr)

Exit codes: 0 every task completed, 1 blocked or failed, 2 invalid input, 130 cancelled (Ctrl-C).

Examples:
  troupe run plan.json
  troupe run plan.json --workspace ./out --json > events.jsonl`;

export const DEMO_HELP = `Usage: troupe demo [--json]

An offline end-to-end demo: a bundled scripted model (a local double of the Messages API; the
real SDK talks to it, whatever ANTHROPIC_* says) plays the lead and three agents building a small
JavaScript library in a temporary git workspace. One task fails its tests first and is corrected.
Live progress, then a summary: tasks, attempts, tokens, the workspace and its commits.

Flags:
  --json   the run's events as JSON lines on stdout

Example:
  npx troupe demo`;

export const MIGRATE_HELP = `Usage: troupe migrate

Applies pending migrations (under a Postgres advisory lock) to DATABASE_URL, or to the embedded
PGlite database in the data directory when DATABASE_URL is unset, and exits. On a PGlite data
dir that a running service holds it exits 1 at once, naming that service's pid.

Example:
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/troupe troupe migrate`;
