/* Medivoy administration dashboard: plain JavaScript, Chart.js from /admin/chart.umd.min.js. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var store = window.sessionStorage;
  var config;
  var charts = {};
  /** What the page shows, for people and for the browser test. */
  var state = window.dashboardState = { figures: null, charts: {}, organization: '', period: null, downloads: [] };

  function b64url(bytes) {
    var s = '';
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function random(n) { var a = new Uint8Array(n); crypto.getRandomValues(a); return b64url(a); }
  function redirectUri() { return location.origin + '/admin/'; }

  async function signIn() {
    var verifier = random(32);
    var challenge = b64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
    var st = random(16);
    store.setItem('admin.pkce', JSON.stringify({ verifier: verifier, state: st }));
    var q = new URLSearchParams({ response_type: 'code', client_id: config.clientId, redirect_uri: redirectUri(), scope: config.scope, state: st, aud: config.fhirBase, code_challenge: challenge, code_challenge_method: 'S256' });
    location.assign(config.authorize + '?' + q);
  }

  async function finishSignIn(params) {
    var pending = JSON.parse(store.getItem('admin.pkce') || 'null');
    store.removeItem('admin.pkce');
    history.replaceState(null, '', '/admin/');
    if (!pending || pending.state !== params.get('state')) throw new Error('The sign-in answer does not match this page; sign in again');
    var res = await fetch(config.token, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'authorization_code', code: params.get('code'), redirect_uri: redirectUri(), code_verifier: pending.verifier, client_id: config.clientId }) });
    var body = await res.json();
    if (!res.ok) throw new Error('Sign-in failed: ' + (body.error_description || body.error || res.status));
    store.setItem('admin.token', body.access_token);
  }

  async function fhir(path, opts) {
    opts = opts || {};
    var res = await fetch(config.fhirBase + '/' + path, { method: opts.method || 'GET', headers: { authorization: 'Bearer ' + store.getItem('admin.token'), accept: 'application/fhir+json' } });
    if (res.status === 401) { store.removeItem('admin.token'); show(false); throw new Error('Your session has ended; sign in again'); }
    var body = res.status === 204 ? null : await res.json();
    if (res.status >= 400) throw new Error((body && body.issue && body.issue[0] && (body.issue[0].diagnostics || (body.issue[0].details && body.issue[0].details.text))) || ('HTTP ' + res.status));
    return { status: res.status, body: body, headers: res.headers };
  }

  /** Parameters → plain values (repeated names → arrays where the figure is a list). */
  var LISTS = { specialties: 1, bySpecialty: 1, byOrganization: 1, byPaymentMethod: 1, roles: 1, ratings: 1, organization: 1 };
  function plain(parts) {
    var o = {};
    (parts || []).forEach(function (p) {
      var v = p.part ? plain(p.part) : p.valueMoney ? p.valueMoney : p.valueReference ? p.valueReference.reference :
        p.valueInteger !== undefined ? p.valueInteger : p.valueDecimal !== undefined ? p.valueDecimal : p.valueBoolean !== undefined ? p.valueBoolean : p.valueString;
      if (LISTS[p.name]) (o[p.name] = o[p.name] || []).push(v); else o[p.name] = v;
    });
    return o;
  }

  function show(signedIn) {
    $('signed-out').hidden = signedIn;
    $('dashboard').hidden = !signedIn;
    $('sign-out').hidden = !signedIn;
  }
  function status(text, error) { $('status').textContent = text; $('status').className = error ? 'error' : ''; }
  function iso(d) { return d.toISOString().slice(0, 10); }
  function setDays(n) {
    var end = new Date();
    $('end').value = iso(end);
    $('start').value = iso(new Date(end.getTime() - (n - 1) * 86400000));
  }
  function money(m) { return m ? m.value.toLocaleString('en', { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + ' ' + m.currency : '-'; }

  function chart(id, type, labels, data, opts) {
    if (charts[id]) charts[id].destroy();
    var colors = ['#2563eb', '#16a34a', '#f59e0b', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#9ca3af', '#0f766e'];
    charts[id] = new Chart($(id), {
      type: type,
      data: { labels: labels, datasets: [{ label: (opts && opts.label) || '', data: data, backgroundColor: type === 'doughnut' || type === 'pie' ? colors : (opts && opts.color) || colors[0], borderColor: (opts && opts.color) || colors[0], fill: false, tension: 0.2 }] },
      options: { animation: false, responsive: true, maintainAspectRatio: false, indexAxis: (opts && opts.horizontal) ? 'y' : 'x', plugins: { legend: { display: type === 'doughnut' || type === 'pie' } } },
    });
    state.charts[id] = { labels: labels.slice(), data: data.slice() };
  }

  function kpis(f) {
    var o = f.overview;
    var g = o.growth;
    var delta = function (x) { return x && x.changePercent !== undefined ? (x.changePercent >= 0 ? '+' : '') + x.changePercent + ' % vs previous' : 'no previous figures'; };
    var cards = [
      ['Appointments', o.appointments, delta(g.appointments)], ['Revenue', money(o.revenue), delta(g.revenue)], ['Active patients', o.activePatients, delta(g.activePatients)],
      ['Patients', o.patients, ''], ['Verified practitioners', o.verifiedPractitioners, ''], ['Active organizations', o.activeOrganizations, ''],
      ['Completion rate', f.appointments.completionRate + ' %', ''], ['No-show rate', f.appointments.noShowRate + ' %', ''],
      ['Avg consultation', f.appointments.averageConsultationMinutes !== undefined ? f.appointments.averageConsultationMinutes + ' min' : '-', ''],
      ['Avg per paid appointment', money(f.revenue.averagePerPaidAppointment), ''],
      ['Slot utilisation', f.practitioners.slotUtilisation.rate !== undefined ? f.practitioners.slotUtilisation.rate + ' %' : '-', f.practitioners.slotUtilisation.booked + ' of ' + f.practitioners.slotUtilisation.available + ' slots'],
    ];
    var box = $('kpis');
    box.textContent = '';
    cards.forEach(function (c) {
      var d = document.createElement('div');
      d.className = 'kpi';
      d.dataset.kpi = c[0];
      [['label', c[0]], ['value', String(c[1])], ['delta', c[2]]].forEach(function (x) { var s = document.createElement('div'); s.className = x[0]; s.textContent = x[1]; d.appendChild(s); });
      box.appendChild(d);
    });
  }

  async function load() {
    var org = $('organization').value;
    var q = new URLSearchParams({ start: $('start').value, end: $('end').value });
    status('Loading…');
    try {
      var res = await fhir((org ? org + '/' : '') + '$analytics?' + q);
      var f = plain(res.body.parameter);
      state.figures = f;
      state.organization = org;
      state.period = { start: f.period.start, end: f.period.end, timezone: f.period.timezone };
      kpis(f);
      var days = Object.keys(f.appointments.daily);
      chart('chart-daily', 'bar', days, days.map(function (d) { return f.appointments.daily[d]; }), { label: 'Appointments' });
      var rdays = Object.keys(f.revenue.daily);
      chart('chart-revenue', 'line', rdays, rdays.map(function (d) { return f.revenue.daily[d].value; }), { label: 'Revenue', color: '#16a34a' });
      var st = Object.keys(f.appointments.byStatus || {});
      chart('chart-status', 'doughnut', st, st.map(function (s) { return f.appointments.byStatus[s]; }));
      var sp = f.appointments.specialties || [];
      chart('chart-specialties', 'bar', sp.map(function (s) { return s.name; }), sp.map(function (s) { return s.appointments; }), { horizontal: true, color: '#7c3aed' });
      var hours = Object.keys(f.appointments.peakHours);
      chart('chart-hours', 'bar', hours, hours.map(function (h) { return f.appointments.peakHours[h]; }), { color: '#f59e0b' });
      var m = f.revenue.byPaymentMethod || [];
      chart('chart-methods', 'pie', m.map(function (x) { return x.method; }), m.map(function (x) { return x.amount.value; }));
      status(f.period.start + ' to ' + f.period.end + ' (' + f.period.timezone + ')');
      state.loaded = (state.loaded || 0) + 1;
    } catch (e) { status(e.message, true); }
  }

  async function report(format) {
    var org = $('organization').value;
    var q = new URLSearchParams({ start: $('start').value, end: $('end').value, format: format });
    var progress = $('report-progress');
    try {
      progress.textContent = format.toUpperCase() + ': starting…';
      var res = await fhir((org ? org + '/' : '') + '$analytics-report?' + q, { method: 'POST' });
      var statusUrl = res.headers.get('content-location');
      var rel = statusUrl.slice(config.fhirBase.length + 1);
      for (;;) {
        var s = await fhir(rel);
        progress.textContent = format.toUpperCase() + ': ' + (s.headers.get('x-progress') || '');
        if (s.status === 200) break;
        await new Promise(function (r) { setTimeout(r, 500); });
      }
      var file = (await fhir(rel + '&download=true')).body;
      var bytes = Uint8Array.from(atob(file.data), function (c) { return c.charCodeAt(0); });
      var doc = (await fhir(rel)).body;
      var name = doc.content[0].attachment.title;
      var a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([bytes], { type: file.contentType }));
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      state.downloads.push(name);
      progress.textContent = format.toUpperCase() + ': downloaded ' + name;
    } catch (e) { progress.textContent = format.toUpperCase() + ': ' + e.message; }
  }

  async function start() {
    config = await (await fetch('/admin/config.json')).json();
    $('sign-in').addEventListener('click', function () { signIn().catch(function (e) { status(e.message, true); }); });
    $('sign-out').addEventListener('click', function () { store.removeItem('admin.token'); show(false); });
    var params = new URLSearchParams(location.search);
    if (params.get('code')) {
      try { await finishSignIn(params); } catch (e) { show(false); $('signed-out').querySelector('p').textContent = e.message; return; }
    } else if (params.get('error')) {
      history.replaceState(null, '', '/admin/');
      show(false);
      $('signed-out').querySelector('p').textContent = 'Sign-in failed: ' + (params.get('error_description') || params.get('error'));
      return;
    }
    if (!store.getItem('admin.token')) { show(false); return; }
    show(true);
    try {
      var ctx = plain((await fhir('$analytics-context')).body.parameter);
      var sel = $('organization');
      sel.textContent = '';
      if (ctx.system) { var all = document.createElement('option'); all.value = ''; all.textContent = 'All organizations'; sel.appendChild(all); }
      (ctx.organization || []).forEach(function (o) { var opt = document.createElement('option'); opt.value = o.reference; opt.textContent = o.name || o.reference; sel.appendChild(opt); });
      sel.disabled = !ctx.system;
      $('who').textContent = ctx.system ? 'System administrator' : 'Administrator of ' + ((ctx.organization || [])[0] || {}).name;
    } catch (e) { status(e.message, true); return; }
    setDays(30);
    document.querySelectorAll('.presets button').forEach(function (b) { b.addEventListener('click', function () { setDays(Number(b.dataset.days)); load(); }); });
    $('organization').addEventListener('change', load);
    $('controls').addEventListener('submit', function (e) { e.preventDefault(); load(); });
    document.querySelectorAll('.downloads button').forEach(function (b) { b.addEventListener('click', function () { report(b.dataset.format); }); });
    await load();
  }
  start().catch(function (e) { status(e.message, true); });
})();
