/* edgeshadow's Mosquitto 2.0 plugin (plugin API v5): SUBSCRIBE checked against the ACL file.
 *
 * Mosquitto 2.0.11's acl_file check answers every SUBSCRIBE as allowed ("FIXME - implement ACL
 * subscription strings", src/security_default.c): a device subscribing to another thing's topics
 * or to `#` gets a granted SUBACK, and the ACL then silently delivers nothing. AWS IoT checks the
 * filter against the policy's iot:Subscribe resources and refuses it. This plugin reads the same
 * ACL file (plugin_opt_acl_file) and, for MOSQ_ACL_SUBSCRIBE only, allows a filter when every topic
 * it can match is readable under one rule that applies to the client: its `user` section's
 * `topic read|readwrite` lines, and `pattern read|readwrite` lines with %u (user name) and %c
 * (client id) substituted. Otherwise MOSQ_ERR_ACL_DENIED, which Mosquitto answers with SUBACK 0x80
 * (MQTT 3.1.1) or 0x87 Not authorized (MQTT 5). An allowed filter is deferred to the acl_file
 * check, which lets it through; publish and receive checks are always deferred to it.
 *
 * The plugin's callback runs before the acl_file's (plugins register theirs first, in
 * mosquitto_security_module_init). `deny` lines are refused at start-up (not modelled here), so the
 * plugin can never allow what the file forbids. Built by `make mosquitto-plugin` (make setup).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define LINE_MAX_LEN 1024

struct rule {
	char *user;     /* NULL for a pattern line, or a topic line before any `user` line */
	char *topic;
	int pattern;
};

struct acl {
	struct rule *rules;
	size_t count;
};

static mosquitto_plugin_id_t *plugin_id;
static struct acl acl;
static char *acl_path;

/* 1 if every topic matching `filter` also matches the ACL topic `rule` (both MQTT filters). */
static int filter_within(const char *filter, const char *rule)
{
	if(filter[0] == '$' && rule[0] != '$') return 0;
	for(;;){
		size_t fl = strcspn(filter, "/"), rl = strcspn(rule, "/");
		if(rl == 1 && rule[0] == '#') return 1;
		if(fl == 1 && filter[0] == '#') return 0;              /* rule's level is not # */
		if(!(rl == 1 && rule[0] == '+')){
			if(fl == 1 && filter[0] == '+') return 0;           /* + under a literal level */
			if(fl != rl || strncmp(filter, rule, fl)) return 0;
		}
		filter += fl;
		rule += rl;
		if(!*filter){                                      /* "a" is within "a" and "a/#" */
			return !*rule || !strcmp(rule, "/#");
		}
		if(!*rule) return 0;
		filter++;
		rule++;
	}
}

/* `topic` with every %u and %c replaced (malloc'd), or NULL if out of memory. */
static char *substituted(const char *topic, const char *user, const char *id)
{
	size_t len = strlen(topic) + 1, ul = strlen(user), il = strlen(id);
	char *out = malloc(len + (ul > il ? ul : il) * len), *o = out;
	if(!out) return NULL;
	for(const char *t = topic; *t; t++){
		if(t[0] == '%' && (t[1] == 'u' || t[1] == 'c')){
			const char *s = t[1] == 'u' ? user : id;
			size_t n = strlen(s);
			memcpy(o, s, n);
			o += n;
			t++;
		}else{
			*o++ = *t;
		}
	}
	*o = '\0';
	return out;
}

/* A name substituted into a pattern must stay inside one topic level. */
static int plain_name(const char *s)
{
	return s && *s && !strpbrk(s, "+#/");
}

static int subscribe_allowed(const char *filter, const char *user, const char *id)
{
	for(size_t i = 0; i < acl.count; i++){
		const struct rule *r = &acl.rules[i];
		int ok;
		if(r->pattern){
			if(!plain_name(user) || !plain_name(id)) continue;
			char *topic = substituted(r->topic, user, id);
			if(!topic) return 0;
			ok = filter_within(filter, topic);
			free(topic);
		}else{
			if(r->user == NULL ? user != NULL : (user == NULL || strcmp(r->user, user))) continue;
			ok = filter_within(filter, r->topic);
		}
		if(ok) return 1;
	}
	return 0;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	(void)event;
	(void)userdata;
	if(ed->access != MOSQ_ACL_SUBSCRIBE) return MOSQ_ERR_PLUGIN_DEFER;
	const char *user = mosquitto_client_username(ed->client);
	const char *id = mosquitto_client_id(ed->client);
	if(id && subscribe_allowed(ed->topic, user, id)) return MOSQ_ERR_PLUGIN_DEFER;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "edgeshadow_acl: SUBSCRIBE to '%s' by '%s' refused",
			ed->topic, id ? id : "(no id)");
	return MOSQ_ERR_ACL_DENIED;
}

/* -- the ACL file --------------------------------------------------------------------------- */

static int add_rule(const char *user, const char *topic, int pattern)
{
	struct rule *grown = realloc(acl.rules, (acl.count + 1) * sizeof(*grown));
	if(!grown) return MOSQ_ERR_NOMEM;
	acl.rules = grown;
	struct rule *r = &acl.rules[acl.count];
	r->user = user && !pattern ? strdup(user) : NULL;
	r->topic = strdup(topic);
	r->pattern = pattern;
	if(!r->topic || (user && !pattern && !r->user)) return MOSQ_ERR_NOMEM;
	acl.count++;
	return MOSQ_ERR_SUCCESS;
}

/* One `topic`/`pattern` line's rest ("[access] topic"): the rule added if it grants read. */
static int parse_rule(char *rest, const char *user, int pattern)
{
	while(*rest == ' ' || *rest == '\t') rest++;
	char *topic = rest, *sp = strpbrk(rest, " \t");
	int read = 1;
	if(sp){
		*sp = '\0';
		if(!strcmp(rest, "deny")){
			mosquitto_log_printf(MOSQ_LOG_ERR, "edgeshadow_acl: `deny` ACL lines are not supported");
			return MOSQ_ERR_NOT_SUPPORTED;
		}
		if(!strcmp(rest, "read") || !strcmp(rest, "readwrite")) topic = sp + 1;
		else if(!strcmp(rest, "write")) read = 0;
		else *sp = ' ';  /* no access word: the whole rest is the topic, readwrite */
	}
	while(*topic == ' ' || *topic == '\t') topic++;
	return read && *topic ? add_rule(user, topic, pattern) : MOSQ_ERR_SUCCESS;
}

static int parse_line(char *line, char **user)
{
	size_t len = strlen(line);
	while(len && isspace((unsigned char)line[len - 1])) line[--len] = '\0';  /* as Mosquitto */
	while(*line == ' ' || *line == '\t') line++;
	if(!*line || *line == '#') return MOSQ_ERR_SUCCESS;
	if(!strncmp(line, "user ", 5)){
		free(*user);
		*user = strdup(line + 5);
		return *user ? MOSQ_ERR_SUCCESS : MOSQ_ERR_NOMEM;
	}
	if(!strncmp(line, "topic ", 6)) return parse_rule(line + 6, *user, 0);
	if(!strncmp(line, "pattern ", 8)) return parse_rule(line + 8, NULL, 1);
	mosquitto_log_printf(MOSQ_LOG_ERR, "edgeshadow_acl: unknown ACL line '%s'", line);
	return MOSQ_ERR_INVAL;
}

static int load_acl(const char *path)
{
	char line[LINE_MAX_LEN], *user = NULL;
	int rc = MOSQ_ERR_SUCCESS;
	FILE *f = fopen(path, "r");
	if(!f){
		mosquitto_log_printf(MOSQ_LOG_ERR, "edgeshadow_acl: cannot open ACL file '%s'", path);
		return MOSQ_ERR_INVAL;
	}
	while(rc == MOSQ_ERR_SUCCESS && fgets(line, sizeof(line), f)){
		rc = parse_line(line, &user);
	}
	free(user);
	fclose(f);
	return rc;
}

static void free_acl(void)
{
	for(size_t i = 0; i < acl.count; i++){
		free(acl.rules[i].user);
		free(acl.rules[i].topic);
	}
	free(acl.rules);
	acl.rules = NULL;
	acl.count = 0;
}

/* SIGHUP: Mosquitto reads its acl_file again, and so does the plugin (no rules if that fails:
 * every SUBSCRIBE refused, never granted). */
static int on_reload(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	(void)userdata;
	free_acl();
	if(load_acl(acl_path) != MOSQ_ERR_SUCCESS) free_acl();
	mosquitto_log_printf(MOSQ_LOG_INFO, "edgeshadow_acl: %zu readable ACL rules from %s", acl.count, acl_path);
	return MOSQ_ERR_PLUGIN_DEFER;
}

/* -- the plugin interface --------------------------------------------------------------------- */

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	const char *path = NULL;
	(void)userdata;
	for(int i = 0; i < option_count; i++){
		if(!strcmp(options[i].key, "acl_file")) path = options[i].value;
	}
	if(!path){
		mosquitto_log_printf(MOSQ_LOG_ERR, "edgeshadow_acl: plugin_opt_acl_file is required");
		return MOSQ_ERR_INVAL;
	}
	int rc = load_acl(path);
	acl_path = strdup(path);
	if(rc == MOSQ_ERR_SUCCESS && !acl_path) rc = MOSQ_ERR_NOMEM;
	if(rc != MOSQ_ERR_SUCCESS){
		free_acl();
		return rc;
	}
	plugin_id = identifier;
	mosquitto_log_printf(MOSQ_LOG_INFO, "edgeshadow_acl: %zu readable ACL rules from %s", acl.count, path);
	rc = mosquitto_callback_register(plugin_id, MOSQ_EVT_RELOAD, on_reload, NULL, NULL);
	return rc ? rc : mosquitto_callback_register(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	if(plugin_id){
		mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
		mosquitto_callback_unregister(plugin_id, MOSQ_EVT_RELOAD, on_reload, NULL);
	}
	free_acl();
	free(acl_path);
	acl_path = NULL;
	return MOSQ_ERR_SUCCESS;
}
