-- Callback listener settings and spool functions (SPEC §5): deterministic parts only.
-- The listener itself is exercised over HTTP by test/integration/test_listener.py.
SET client_min_messages = warning;

-- Settings: names, contexts and units (values that the test cluster sets are left out).
SELECT name, context, unit, boot_val
  FROM pg_settings
 WHERE name IN ('thingspace_fdw.listen_addresses', 'thingspace_fdw.listen_port',
                'thingspace_fdw.callback_path', 'thingspace_fdw.callback_username',
                'thingspace_fdw.allowed_sources', 'thingspace_fdw.spool_directory',
                'thingspace_fdw.spool_retention', 'thingspace_fdw.max_callback_size')
 ORDER BY name;
SHOW thingspace_fdw.callback_path;
SHOW thingspace_fdw.spool_directory;
SHOW thingspace_fdw.spool_retention;
SHOW thingspace_fdw.max_callback_size;
SELECT current_setting('thingspace_fdw.callback_password') <> '' AS password_set;

-- Reloadable settings are not per session; bad values are refused before they are written.
SET thingspace_fdw.allowed_sources = '10.0.0.0/8';
ALTER SYSTEM SET thingspace_fdw.allowed_sources = '10.0.0.0/33';
ALTER SYSTEM SET thingspace_fdw.allowed_sources = 'example.com';
ALTER SYSTEM SET thingspace_fdw.callback_path = 'callback';
ALTER SYSTEM SET thingspace_fdw.listen_port = 70000;
ALTER SYSTEM SET thingspace_fdw.max_callback_size = '4GB';
-- The prefix is reserved: a misspelt setting is an error, not a silent placeholder.
SET thingspace_fdw.listen_adresses = '*';

-- The listing's shape (its contents depend on what other tests sent).
SELECT * FROM thingspace_callbacks() LIMIT 0;

-- Payload arguments.
SELECT * FROM thingspace_callback_payload(NULL);
SELECT * FROM thingspace_callback_payload('../../global/pg_control');
SELECT * FROM thingspace_callback_payload('.hidden');
SELECT * FROM thingspace_callback_payload(repeat('x', 129));
SELECT * FROM thingspace_callback_payload('no-such-request');
SELECT * FROM thingspace_callback_payload('no-such-request', -1);
SELECT * FROM thingspace_callback_payload('no-such-request', 1);

-- Registration: argument errors come before any call to ThingSpace.
CREATE FOREIGN DATA WRAPPER ts_listener_other_fdw;
CREATE SERVER ts_listener_other FOREIGN DATA WRAPPER ts_listener_other_fdw;
CREATE SERVER ts_listener FOREIGN DATA WRAPPER thingspace_fdw OPTIONS (base_url 'http://127.0.0.1:9');
SELECT thingspace_register_callback('no_such_server', '0000123456-00001', 'https://cb.example.test/');
SELECT thingspace_register_callback('ts_listener_other', '0000123456-00001', 'https://cb.example.test/');
SELECT thingspace_register_callback('ts_listener', '', 'https://cb.example.test/');
SELECT thingspace_register_callback('ts_listener', '0000123456-00001', 'ftp://cb.example.test/');
SELECT thingspace_register_callback('ts_listener', '0000123456-00001', 'https://cb.example.test/', '');
SELECT thingspace_delete_callback('ts_listener', '0000123456-00001', '');

-- An ordinary role: no spool access, no listener password, no registration with it.
CREATE ROLE ts_listener_role;
GRANT USAGE ON FOREIGN SERVER ts_listener TO ts_listener_role;
SET ROLE ts_listener_role;
SHOW thingspace_fdw.callback_password;
SELECT current_setting('thingspace_fdw.callback_password');
SELECT count(*) FROM pg_settings WHERE name = 'thingspace_fdw.callback_password';
SHOW thingspace_fdw.callback_path;
SELECT * FROM thingspace_callbacks();
SELECT * FROM thingspace_callback_payload('x');
SELECT thingspace_register_callback('ts_listener', '0000123456-00001', 'https://cb.example.test/');
RESET ROLE;

DROP SERVER ts_listener, ts_listener_other;
DROP FOREIGN DATA WRAPPER ts_listener_other_fdw;
DROP ROLE ts_listener_role;
