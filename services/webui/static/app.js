// enjin's web view. Everything shown comes from the inventory and is hostile input: it is
// put on the page as text (createTextNode, textContent) or attribute values set through the
// DOM, never as markup.
'use strict';

const STATES = ['up', 'suspect', 'down', 'draining', 'stopping', 'decommissioned', 'unknown',
  'live', 'starting', 'superseded', 'failed', 'healthy', 'unhealthy', 'crashed', 'stopped'];

// el makes an element: attrs are set as attributes, children strings become text nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function stateCell(state) {
  const s = String(state || '');
  return el('td', { class: STATES.includes(s) ? 'state state-' + s : 'state' }, s);
}

function when(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return isNaN(d) ? String(ts) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// metaCell shows metadata as key: value lines; values that are not strings as JSON.
function metaCell(tag, meta) {
  const e = el(tag, { class: 'meta' });
  for (const [k, v] of Object.entries(meta || {})) {
    e.appendChild(el('div', {}, k + ': ' + (typeof v === 'string' ? v : JSON.stringify(v))));
  }
  return e;
}

function table(head, rows) {
  return el('table', {}, el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))), el('tbody', {}, ...rows));
}

function toLogin() { window.location.assign('/ui/login'); }

// get fetches JSON from the meta API with the session cookie.
async function get(path) {
  const r = await fetch(path, { headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) { toLogin(); throw new Error('the session ended'); }
  // Sequence numbers pass 2^53: such numbers are kept as their digits, not rounded.
  const body = await r.text().then((t) => JSON.parse(t, (k, v, ctx) =>
    typeof v === 'number' && !Number.isSafeInteger(v) && ctx && ctx.source && /^\d+$/.test(ctx.source) ? ctx.source : v)).catch(() => ({}));
  if (!r.ok) throw new Error((body && body.error) || ('HTTP ' + r.status));
  return body;
}

// runner runs load at most once at a time; a request while it runs runs it once more after.
function runner(load, target) {
  let running = false, again = false;
  return async function run() {
    if (running) { again = true; return; }
    running = true;
    try {
      do {
        again = false;
        try {
          document.getElementById(target).replaceChildren(await load());
        } catch (err) {
          document.getElementById(target).replaceChildren(el('p', { class: 'error' }, 'Could not load: ' + err.message));
        }
      } while (again);
    } finally { running = false; }
  };
}

async function loadNodes() {
  const [nodes, comps, latest, members, leader] = await Promise.all([get('/v1/nodes?limit=10000'), get('/v1/compartments'),
    get('/v1/observations/latest'), get('/v1/members'), get('/v1/leader')]);
  const compByID = new Map((comps.compartments || []).map((c) => [c.id, c]));
  const obsByNode = new Map((latest.observations || []).map((o) => [o.node, o]));
  // What each compartment holding nodes uses, summed by ring 0 (GET …/usage); one that fails
  // to load shows as such, not the page.
  const cids = [...new Set((nodes.nodes || []).map((n) => n.compartment).filter((c) => c))];
  const usage = new Map(await Promise.all(cids.map((cid) =>
    get('/v1/compartments/' + encodeURIComponent(cid) + '/usage').then((u) => [cid, u], () => [cid, null]))));
  const frag = document.createDocumentFragment();
  for (const ring of [0, 1, 2]) {
    const inRing = (nodes.nodes || []).filter((n) => n.ring === ring);
    const sec = el('div', { class: 'ring', 'data-ring': ring }, el('h3', {}, 'Ring ' + ring + ' (' +
      (ring === 0 ? (members.members || []).length + ' members' : inRing.length + ' nodes') + ')'));
    const groups = new Map();
    for (const n of inRing) {
      const k = n.compartment || '';
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(n);
    }
    for (const [cid, ns] of groups) {
      const c = compByID.get(cid);
      sec.appendChild(el('h4', { class: 'compartment' }, cid ? 'Compartment ' + (c ? c.label + ' (' + c.type + ')' : cid) : 'No compartment'));
      if (cid) sec.appendChild(usageLine(cid, usage.get(cid)));
      sec.appendChild(table(['Node', 'Label', 'State', 'Supervision / observation', 'Last observation', 'Seq', 'Signature', 'Metadata'],
        ns.map((n) => nodeRow(n, obsByNode.get(n.id)))));
    }
    if (ring === 0) sec.appendChild(membersTable(members.members || [], leader));
    else if (inRing.length === 0) sec.appendChild(el('p', { class: 'note' }, 'No nodes.'));
    frag.appendChild(sec);
  }
  return frag;
}

// usageLine sums up what a compartment's nodes (and those of compartments below it) use.
function usageLine(cid, u) {
  if (!u) return el('p', { class: 'usage', 'data-compartment': cid }, 'Usage: could not load');
  const mib = (b) => Math.round(Number(b || 0) / (1 << 20)) + ' MiB';
  return el('p', { class: 'usage', 'data-compartment': cid },
    'Usage: ' + u.nodes + (u.nodes === 1 ? ' node' : ' nodes') + ' (' + u.nodes_up + ' up, ' + u.reporting + ' reporting)' +
    ' · CPU ' + Number(u.cpu || 0).toFixed(2) + ' cores · memory ' + mib(u.mem_bytes) +
    ' · ' + u.instances + ' instances and VMs · ' + (u.vm_memory_mb || 0) + ' MiB offered to VMs');
}

// membersTable lists ring 0's members that announced themselves lately, and which leads.
function membersTable(ms, leader) {
  return table(['Ring 0 member', 'API', 'NATS', 'Last seen', 'Role'], ms.map((m) =>
    el('tr', { 'data-member': m.member }, el('td', {}, m.member), el('td', {}, m.api || ''), el('td', {}, m.nats || ''),
      el('td', {}, when(m.seen)), el('td', { class: leader.member === m.member ? 'ok' : '' },
        leader.member === m.member ? 'leader (epoch ' + leader.epoch + ')' : 'member'))));
}

function nodeRow(n, o) {
  let sig = el('td', { class: 'sig' }, '—');
  if (o) {
    sig = o.verified ? el('td', { class: 'sig ok' }, '✓ verified' + (o.observer ? ' (by ' + o.observer + ')' : ''))
      : el('td', { class: 'sig bad' }, '✗ ' + (o.reason || 'does not verify'));
  }
  return el('tr', { 'data-node': n.id },
    el('td', { class: 'id' }, n.id),
    el('td', { class: 'label' }, n.label || ''),
    stateCell(n.state),
    el('td', {}, (n.supervision_strategy || '') + ' / ' + (n.observation_strategy || '')),
    el('td', { class: 'obs-time' }, when(n.last_observation_ts)),
    el('td', { class: 'seq' }, n.last_seq ? String(n.last_seq) : '—'),
    sig,
    metaCell('td', n.metadata));
}

async function loadApps() {
  const tenants = (await get('/v1/tenants')).tenants || [];
  const frag = document.createDocumentFragment();
  if (tenants.length === 0) frag.appendChild(el('p', { class: 'note' }, 'No tenants.'));
  const parts = await Promise.all(tenants.map(tenantSection));
  for (const p of parts) frag.appendChild(p);
  return frag;
}

async function tenantSection(t) {
  const sec = el('div', { class: 'tenant', 'data-tenant': t.id }, el('h3', {}, 'Tenant ' + t.id));
  if (t.metadata && Object.keys(t.metadata).length) sec.appendChild(metaCell('div', t.metadata));
  const path = '/v1/tenants/' + encodeURIComponent(t.id) + '/apps';
  let apps;
  try {
    apps = (await get(path)).apps || [];
  } catch (err) {
    sec.appendChild(el('p', { class: 'note' }, 'Apps: ' + err.message));
    return sec;
  }
  if (apps.length === 0) sec.appendChild(el('p', { class: 'note' }, 'No apps.'));
  const blocks = await Promise.all(apps.map(async (a) => {
    const base = path + '/' + encodeURIComponent(a.name);
    const [rels, insts] = await Promise.all([get(base + '/releases').catch((e) => e), get(base + '/instances').catch((e) => e)]);
    const div = el('div', { class: 'app', 'data-app': t.id + '/' + a.name },
      el('h4', {}, 'App ' + a.name + ' — live release ' + (a.release || 'none') + (a.node ? ' — on ' + a.node : '')));
    div.appendChild(rels instanceof Error ? el('p', { class: 'error' }, 'Releases: ' + rels.message)
      : table(['Release', 'Status', 'Created'], (rels.releases || []).map((r) =>
        el('tr', { 'data-release': r.number }, el('td', {}, String(r.number)), stateCell(r.status), el('td', {}, when(r.created))))));
    div.appendChild(insts instanceof Error ? el('p', { class: 'error' }, 'Instances: ' + insts.message)
      : table(['Instance', 'Node', 'Host', 'Release', 'State', 'Restarts'], (insts.instances || []).map((i) =>
        el('tr', { 'data-instance': i.id }, el('td', {}, i.name || ''), el('td', {}, i.id || ''), el('td', {}, i.host || i.node || ''),
          el('td', {}, String(i.release || '')), stateCell(i.state), el('td', {}, String(i.restarts || 0))))));
    return div;
  }));
  for (const b of blocks) sec.appendChild(b);
  return sec;
}

function connect() {
  const live = document.getElementById('live');
  const nodes = runner(loadNodes, 'nodes');
  const apps = runner(loadApps, 'apps');
  const es = new EventSource('/ui/events');
  es.addEventListener('open', () => { live.textContent = 'live'; live.className = 'live on'; });
  es.addEventListener('nodes', nodes);
  es.addEventListener('apps', apps);
  es.addEventListener('logout', () => { es.close(); toLogin(); });
  es.addEventListener('error', () => {
    live.textContent = 'reconnecting…'; live.className = 'live';
    if (es.readyState === EventSource.CLOSED) {
      // Refused (no session) or gone: ask once whether the session still stands, then retry.
      get('/v1/leader').then(() => setTimeout(connect, 2000), () => setTimeout(connect, 2000));
    }
  });
}

document.addEventListener('DOMContentLoaded', connect);
