// The wss chat page. Every piece of text from the network is put on the page with
// textContent, never as HTML, so a message can never become markup or script.
"use strict";

(function () {
  const NAME_KEY = "wss-chat-name";
  const MAX_NAME_CHARS = 32;
  // Reconnect delays grow 0.5 s, 1 s, 2 s ... up to 15 s, with jitter so that a room full
  // of pages does not hammer a restarting server in lockstep.
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    state: $("state"),
    stateText: $("state-text"),
    messages: $("messages"),
    composer: $("composer"),
    input: $("composer-input"),
    send: $("send"),
    people: $("people"),
    peopleList: $("people-list"),
    peopleCount: $("people-count"),
    peopleToggle: $("people-toggle"),
    rename: $("rename"),
    nameDialog: $("name-dialog"),
    nameForm: $("name-form"),
    nameInput: $("name-input"),
  };

  const meta = document.querySelector('meta[name="wss-path"]');
  const wsPath = meta && meta.content.startsWith("/") ? meta.content : "/ws";

  let socket = null;
  let myName = "";
  let attempt = 0;
  let retryTimer = null;
  let countdownTimer = null;
  let everConnected = false;

  function readName() {
    const fromUrl = new URLSearchParams(location.search).get("name");
    if (fromUrl && fromUrl.trim()) return fromUrl.trim().slice(0, MAX_NAME_CHARS);
    try {
      return (localStorage.getItem(NAME_KEY) || "").trim();
    } catch (_) {
      return "";
    }
  }

  function saveName(name) {
    try {
      localStorage.setItem(NAME_KEY, name);
    } catch (_) {
      // Private mode: the name simply is not remembered.
    }
  }

  function setState(state, text) {
    ui.state.dataset.state = state;
    ui.stateText.textContent = text;
    const online = state === "online";
    ui.input.disabled = !online;
    ui.send.disabled = !online;
    if (online) ui.input.focus({ preventScroll: true });
  }

  function timeLabel(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function nearBottom() {
    const m = ui.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function append(li) {
    const stick = nearBottom();
    ui.messages.appendChild(li);
    // Keep the page light on long sessions: the oldest lines go first.
    while (ui.messages.childElementCount > 500) ui.messages.firstElementChild.remove();
    if (stick) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function addNotice(kind, text) {
    const li = el("li", "notice " + kind);
    li.appendChild(el("span", "notice-text", text));
    li.appendChild(el("time", "time", timeLabel(new Date())));
    append(li);
  }

  // FNV-1a over the code points, so similar names still get clearly different colours.
  function hue(name) {
    let h = 2166136261;
    for (const ch of name) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
    return h % 360;
  }

  function addMessage(name, text, mine) {
    const li = el("li", mine ? "message mine" : "message");
    const head = el("div", "head");
    const who = el("span", "name", mine ? "Me" : name);
    if (!mine) who.style.setProperty("--hue", String(hue(name)));
    head.appendChild(who);
    head.appendChild(el("time", "time", timeLabel(new Date())));
    li.appendChild(head);
    li.appendChild(el("p", "text", text));
    append(li);
  }

  function showUsers(users, count) {
    ui.peopleList.replaceChildren();
    const list = Array.isArray(users) ? users.filter((u) => typeof u === "string") : [];
    list.sort((a, b) => a.localeCompare(b));
    for (const name of list) {
      const li = el("li", name === myName ? "me" : "");
      const avatar = el("span", "avatar", Array.from(name)[0] || "?");
      avatar.style.setProperty("--hue", String(hue(name)));
      li.appendChild(avatar);
      li.appendChild(el("span", "who", name === myName ? name + " (you)" : name));
      ui.peopleList.appendChild(li);
    }
    // The server lists at most a few hundred names but always sends the real count.
    const total = Number.isInteger(count) && count >= list.length ? count : list.length;
    ui.peopleCount.textContent = String(total);
  }

  function str(v) {
    return typeof v === "string" ? v : "";
  }

  function onFrame(ev) {
    if (typeof ev.data !== "string") return;
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch (_) {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "welcome":
        myName = str(msg.name) || myName;
        addNotice("welcome", str(msg.text) || "Welcome to the chat!");
        addNotice("self", "You are " + myName + ".");
        showUsers(msg.users, msg.count);
        break;
      case "joined":
        addNotice("joined", str(msg.name) + " joined");
        showUsers(msg.users, msg.count);
        break;
      case "left":
        addNotice("left", str(msg.name) + " left");
        showUsers(msg.users, msg.count);
        break;
      case "message":
        addMessage(str(msg.name), str(msg.text), false);
        break;
      case "users":
        showUsers(msg.users, msg.count);
        break;
      case "error":
        addNotice("error", str(msg.text));
        break;
      default:
        break;
    }
  }

  function clearTimers() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = null;
    countdownTimer = null;
  }

  function scheduleReconnect() {
    clearTimers();
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    attempt += 1;
    const due = Date.now() + delay;
    const tick = () => {
      const secs = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      setState("offline", "Offline, retrying in " + secs + " s");
    };
    tick();
    countdownTimer = setInterval(tick, 250);
    retryTimer = setTimeout(connect, delay);
  }

  function connect() {
    clearTimers();
    if (socket) return;
    setState("connecting", everConnected ? "Reconnecting…" : "Connecting…");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const url = scheme + location.host + wsPath + "?name=" + encodeURIComponent(myName);
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (_) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.addEventListener("open", () => {
      attempt = 0;
      everConnected = true;
      setState("online", "Online");
    });
    ws.addEventListener("message", onFrame);
    ws.addEventListener("close", () => {
      if (socket !== ws) return;
      socket = null;
      showUsers([]);
      if (everConnected && ui.state.dataset.state === "online") addNotice("error", "Connection lost.");
      scheduleReconnect();
    });
  }

  function reconnectNow() {
    if (socket) {
      const old = socket;
      socket = null;
      old.close(1000, "reconnect");
    }
    attempt = 0;
    connect();
  }

  ui.composer.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = ui.input.value.trim();
    if (!text || !socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: "message", text: text }));
    addMessage(myName, text, true);
    ui.input.value = "";
  });

  ui.peopleToggle.addEventListener("click", () => {
    const open = ui.people.classList.toggle("open");
    ui.peopleToggle.setAttribute("aria-expanded", String(open));
  });

  function askName() {
    ui.nameInput.value = myName;
    if (typeof ui.nameDialog.showModal === "function") {
      ui.nameDialog.showModal();
    } else {
      ui.nameDialog.setAttribute("open", "");
    }
    ui.nameInput.focus();
  }

  ui.nameForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = ui.nameInput.value.trim().slice(0, MAX_NAME_CHARS);
    if (!name) return;
    const changed = name !== myName;
    myName = name;
    saveName(name);
    if (typeof ui.nameDialog.close === "function") ui.nameDialog.close();
    else ui.nameDialog.removeAttribute("open");
    if (changed || !socket) reconnectNow();
  });

  ui.rename.addEventListener("click", askName);

  // A phone waking up or a laptop back on the network should not wait out the backoff.
  window.addEventListener("online", () => {
    if (!socket) reconnectNow();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !socket && retryTimer) reconnectNow();
  });

  // A read-only view of the current socket, for tests and the curious: which URL and which
  // extensions (permessage-deflate) were negotiated. It cannot send, close or change anything.
  Object.defineProperty(window, "__wssChat", {
    value: Object.freeze({
      get url() {
        return socket ? socket.url : "";
      },
      get extensions() {
        return socket ? socket.extensions : "";
      },
      get readyState() {
        return socket ? socket.readyState : WebSocket.CLOSED;
      },
    }),
  });

  myName = readName();
  if (myName) {
    connect();
  } else {
    setState("offline", "Choose a name to join");
    askName();
  }
})();
