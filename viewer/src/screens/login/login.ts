// Sign-in form; used as the login page and, over the current screen, when the session expired.
import * as api from '../../api';
import { t } from '../../i18n';
import { h } from '../../ui/dom';

export function loginForm(onDone: () => void): HTMLFormElement {
  const user = h('input', { name: 'username', autocomplete: 'username', required: true,
                            'data-testid': 'login-username' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password',
                            required: true, 'data-testid': 'login-password' });
  const msg = h('p', { class: 'error', 'data-testid': 'login-error' });
  const form = h('form', { class: 'login', 'data-testid': 'login-form' },
    h('label', {}, t('login.username'), user),
    h('label', {}, t('login.password'), pass),
    h('button', { type: 'submit', class: 'primary', 'data-testid': 'login-submit' },
      t('login.submit')),
    msg);
  const prev = api.currentSession()?.username ?? api.expiredUsername();
  if (prev) user.value = prev;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.textContent = '';
    try {
      await api.login(user.value.trim(), pass.value);
      pass.value = '';
      onDone();
    } catch (e) {
      msg.textContent = e instanceof api.ApiError && e.status === 401
        ? t('login.failed') : t('error', { detail: String(e) });
    }
  });
  return form;
}
