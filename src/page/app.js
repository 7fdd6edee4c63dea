// dockhook's status page: live updates. The page works without this file;
// it only listens to the deployment stream (/events, behind the session
// cookie) and, when a deployment changes, fetches the page again and swaps
// in its #content, keeping open step lists open.
(function () {
    'use strict';
    var live = document.getElementById('live');
    if (!live || !document.getElementById('content') ||
        !window.EventSource || !window.fetch || !window.DOMParser) {
        return;
    }
    var timer = null;

    function say(state, text) {
        live.setAttribute('data-state', state);
        live.textContent = text;
    }

    function refresh() {
        timer = null;
        fetch(location.pathname, { credentials: 'same-origin', cache: 'no-store' })
            .then(function (response) {
                if (response.redirected || !response.ok) {
                    throw new Error('status ' + response.status);
                }
                return response.text();
            })
            .then(function (text) {
                var fresh = new DOMParser().parseFromString(text, 'text/html').getElementById('content');
                var current = document.getElementById('content');
                if (!fresh || !current) {
                    return;
                }
                var open = current.querySelectorAll('details[open][id]');
                current.replaceWith(fresh);
                Array.prototype.forEach.call(open, function (details) {
                    var again = document.getElementById(details.id);
                    if (again) {
                        again.open = true;
                    }
                });
            })
            .catch(function () {
                say('error', 'Live updates stopped: reload the page (log in again if asked)');
            });
    }

    // Changes come in bursts (one per step): one refresh per burst.
    function soon() {
        if (timer === null) {
            timer = setTimeout(refresh, 200);
        }
    }

    var stream = new EventSource('/events');
    var lost = false;
    stream.addEventListener('open', function () {
        say('on', 'Live updates on');
        if (lost) {
            soon(); // what changed while the stream was down
        }
        lost = false;
    });
    stream.addEventListener('deployment', soon);
    stream.addEventListener('lagged', soon);
    stream.addEventListener('error', function () {
        lost = true;
        if (stream.readyState === EventSource.CLOSED) {
            say('error', 'Live updates stopped: reload the page (log in again if asked)');
        } else {
            say('off', 'Live updates reconnecting…');
        }
    });
}());
