/** The dashboard's entry: one stylesheet, one app, mounted on `#app`. */
import { render } from 'preact';
import { App } from './App.tsx';
import './style.css';

render(<App />, document.getElementById('app')!);
