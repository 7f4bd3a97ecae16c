/**
 * The dashboard's build: `npm run build:web` bundles `web/` into `dist/web/` (git-ignored), which
 * `src/http/dashboard.ts` serves at `GET /`. Preact's JSX through oxc (no plugin); hashed files
 * under `assets/`; nothing inline, so the page runs under a strict same-origin CSP.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  resolve: { alias: { react: 'preact/compat', 'react-dom': 'preact/compat' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/web/', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    // Inlined assets would be data: URLs; keep every file a same-origin request.
    assetsInlineLimit: 0,
    // elkjs alone is ~1.4 MB; it loads only with the run view.
    chunkSizeWarningLimit: 2000,
    reportCompressedSize: false,
  },
});
