// The arena page: draws what GameClient.frame() returns and turns the
// pointer and keys into inputs.
import { GameClient, KIND, BUTTON } from '/game/game.js';

const canvas = document.getElementById('view');
const ctx = canvas.getContext('2d');
const hud = document.getElementById('hud');
const leaders = document.getElementById('leaders');
const overlay = document.getElementById('overlay');
const joinForm = document.getElementById('join');
const dead = document.getElementById('dead');
let client = null;
let pointer = { x: 0, y: 0 };
let buttons = 0;
let zoom = 1;

function resize() {
  canvas.width = innerWidth * devicePixelRatio;
  canvas.height = innerHeight * devicePixelRatio;
}
addEventListener('resize', resize);
resize();

function color(id) {
  const hue = (id * 137.508) % 360;
  return `hsl(${hue}, 70%, 55%)`;
}

// The chat's sign-in, if any (the chat page keeps its token here).
let accountToken = null;
async function findAccount() {
  const saved = localStorage.getItem('volley.token');
  if (!saved) return;
  try {
    const res = await fetch('/api/me', { headers: { Authorization: `Bearer ${saved}` } });
    if (!res.ok) return;
    const me = await res.json();
    accountToken = saved;
    document.getElementById('account-name').textContent = me.user.name;
    document.getElementById('as-account').classList.remove('hidden');
  } catch { /* no chat here: play as a guest */ }
}
findAccount();

// The all-time board (signed-in players' best), every 10 s.
async function drawBest() {
  try {
    const res = await fetch('/api/game/leaderboard');
    if (res.ok) {
      const { best } = await res.json();
      document.getElementById('best').replaceChildren(...best.slice(0, 5).map(({ name, best: mass }) => {
        const li = document.createElement('li');
        li.textContent = `${name} — ${mass}`;
        return li;
      }));
    }
  } catch { /* try again later */ }
  setTimeout(drawBest, 10000);
}
drawBest();

function start(spectate) {
  const name = document.getElementById('name').value.trim() || 'player';
  localStorage.setItem('volley-game-name', name);
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/game/ws`;
  // A reload within the grace period takes the cell back (token per tab).
  const saved = sessionStorage.getItem('volley-game-token');
  const token = saved && /^[0-9a-f]{32}$/.test(saved) ? Uint8Array.from(saved.match(/../g), (h) => parseInt(h, 16)) : null;
  // Signed in to the chat on this site: play as that account.
  const account = !spectate && accountToken && document.getElementById('use-account').checked ? accountToken : null;
  client = new GameClient(url, { name, spectate, token, account });
  client.addEventListener('welcome', (ev) => {
    if (!ev.detail.spectator) {
      sessionStorage.setItem('volley-game-token', [...ev.detail.token].map((b) => b.toString(16).padStart(2, '0')).join(''));
    }
  });
  window.volleyGame = client; // for tests and the console
  overlay.classList.add('hidden');
  client.addEventListener('death', (ev) => {
    document.getElementById('killer').textContent = ev.detail.name ? `by ${ev.detail.name}` : '';
    overlay.classList.remove('hidden'); joinForm.classList.add('hidden'); dead.classList.remove('hidden');
  });
  client.addEventListener('leaderboard', drawBoard);
  const period = () => 1000 / (client.welcome?.tickHz || 30);
  const send = () => {
    if (!client.welcome?.spectator) {
      client.input(pointer.x / zoom, pointer.y / zoom, buttons);
      buttons = 0;
    } else {
      client.input(0, 0, 0); // acknowledges snapshots
    }
    setTimeout(send, period());
  };
  send();
}

joinForm.addEventListener('submit', (e) => { e.preventDefault(); start(false); });
document.getElementById('watch').addEventListener('click', () => start(true));
document.getElementById('respawn').addEventListener('click', () => {
  client.respawn(); overlay.classList.add('hidden'); dead.classList.add('hidden');
});
document.getElementById('name').value = localStorage.getItem('volley-game-name') || '';
canvas.addEventListener('mousemove', (e) => {
  pointer = { x: (e.clientX - innerWidth / 2) * devicePixelRatio, y: (e.clientY - innerHeight / 2) * devicePixelRatio };
});
addEventListener('keydown', (e) => {
  if (e.code === 'Space') buttons |= BUTTON.SPLIT;
  if (e.code === 'KeyW') buttons |= BUTTON.EJECT;
});

function drawBoard() {
  leaders.replaceChildren(...client.leaderboard.map(({ id, mass }) => {
    const li = document.createElement('li');
    li.textContent = `${client.roster.get(id)?.name ?? '?'} — ${mass}`;
    if (id === client.welcome?.player) li.className = 'me';
    return li;
  }));
}

function draw() {
  requestAnimationFrame(draw);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = '#f2f4f7';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!client) return;
  const f = client.frame();
  const s = client.stats;
  hud.textContent = `${client.state} · room ${client.welcome?.room ?? '-'} · ping ${s.ping.toFixed(0)} ms · ${s.snapshotsPerSec}/s snapshots · ${(s.bytesPerSec / 1024).toFixed(1)} KB/s · mass ${client.header?.mass ?? 0} · ${client.roster.size} players`;
  if (!f) return;
  zoom = Math.min(canvas.width / (1600 * f.camera.scale), canvas.height / (900 * f.camera.scale));
  ctx.setTransform(zoom, 0, 0, zoom, canvas.width / 2 - f.camera.x * zoom, canvas.height / 2 - f.camera.y * zoom);
  // Grid and world border.
  const size = client.welcome.worldSize;
  ctx.strokeStyle = '#dde1e7'; ctx.lineWidth = 1 / zoom;
  ctx.beginPath();
  for (let g = 0; g <= size; g += 100) { ctx.moveTo(g, 0); ctx.lineTo(g, size); ctx.moveTo(0, g); ctx.lineTo(size, g); }
  ctx.stroke();
  ctx.strokeStyle = '#9aa3ad'; ctx.lineWidth = 4 / zoom; ctx.strokeRect(0, 0, size, size);
  for (const e of f.entities) {
    ctx.beginPath();
    ctx.arc(e.x, e.y, e.r, 0, Math.PI * 2);
    if (e.kind === KIND.PELLET) { ctx.fillStyle = color(e.id); ctx.fill(); continue; }
    ctx.fillStyle = e.kind === KIND.BLOB ? '#7a8794' : color(e.owner);
    ctx.fill();
    if (e.kind === KIND.CELL) {
      ctx.lineWidth = Math.max(2, e.r * 0.08); ctx.strokeStyle = e.own ? '#222' : 'rgba(0,0,0,0.25)'; ctx.stroke();
      const name = client.roster.get(e.owner)?.name;
      if (name && e.r > 14) {
        ctx.fillStyle = '#fff'; ctx.font = `bold ${Math.max(10, e.r * 0.4)}px system-ui`;
        ctx.textAlign = 'center'; ctx.textBaseline = 'middle'; ctx.fillText(name, e.x, e.y);
      }
    }
  }
}
draw();
