//! The console's words in English and French, chosen per operator. One
//! table: every string is written once per language, and a page that asks
//! for a word no language has does not compile.

macro_rules! words {
    ($($key:ident: $en:literal, $fr:literal;)*) => {
        /// The console's words in one language.
        #[derive(Debug)]
        pub(crate) struct Tr {
            pub lang: &'static str,
            $(pub $key: &'static str,)*
        }
        pub(crate) static EN: Tr = Tr { lang: "en", $($key: $en,)* };
        pub(crate) static FR: Tr = Tr { lang: "fr", $($key: $fr,)* };
    };
}

words! {
    console: "Vigil console", "Console Vigil";
    sign_in: "Sign in", "Se connecter";
    sign_out: "Sign out", "Se déconnecter";
    operator: "Operator", "Opérateur";
    password: "Password", "Mot de passe";
    cases: "Cases", "Dossiers";
    hits: "Hits", "Correspondances";
    disclosures: "Disclosures", "Divulgations";
    records: "Records", "Fiches";
    audit: "Audit", "Audit";
    federation: "Federation", "Fédération";
    language: "Language", "Langue";
    save: "Save", "Enregistrer";
    my_alerts: "My alerts", "Mes alertes";
    publish_alert: "Publish an alert", "Publier une alerte";
    template_file: "Template file or fingerprint record", "Fichier de gabarit ou fiche d'empreintes";
    pad_file: "Liveness (PAD) attestation, if the capture SDK gave one", "Attestation de détection de fraude (PAD), si le logiciel de capture en a fourni une";
    category: "Category", "Catégorie";
    missing: "Missing person", "Personne disparue";
    found: "Found person", "Personne retrouvée";
    victim: "Victim", "Victime";
    case_ref: "Case reference", "Référence du dossier";
    expires: "Expires after (e.g. 30d)", "Expire après (p. ex. 30d)";
    publish: "Publish", "Publier";
    withdraw: "Withdraw", "Retirer";
    status: "Status", "État";
    created: "Created", "Créée";
    members: "Members", "Membres";
    pending: "pending", "en attente";
    delivered: "delivered", "remise";
    answered: "answered, no match", "répondu, aucune correspondance";
    hit: "hit", "correspondance";
    refused: "refused", "refusé";
    member: "Member", "Membre";
    kind: "Kind", "Type";
    state: "State", "État";
    reason: "Reason", "Motif";
    when: "When", "Quand";
    holder: "Holder", "Détenteur";
    source: "Source", "Origine";
    follow_up: "Follow-up", "Suivi";
    due_in: "due in", "échéance dans";
    overdue_by: "OVERDUE by", "EN RETARD de";
    done: "done", "terminé";
    request_disclosure: "Request disclosure", "Demander la divulgation";
    no_hits: "No hits.", "Aucune correspondance.";
    no_alerts: "No alerts.", "Aucune alerte.";
    asked_by: "Asked by", "Demandée par";
    requested: "requested", "demandée";
    approved: "approved", "approuvée";
    contact: "Contact to disclose", "Contact à divulguer";
    approve: "Approve", "Approuver";
    confirm_approval: "Confirm approval", "Confirmer l'approbation";
    refuse: "Refuse", "Refuser";
    awaiting_second: "first approval by", "première approbation par";
    needs_second: "a second approver, another person, must confirm", "un second approbateur, une autre personne, doit confirmer";
    to_decide: "To decide here", "À décider ici";
    asked_here: "Asked by this node", "Demandées par ce nœud";
    matched_record: "Matched record", "Fiche correspondante";
    match_seen: "seen here", "vue ici";
    match_unverifiable: "decided by the requester's decryption (cannot be checked here)", "décidée par le déchiffrement du demandeur (invérifiable ici)";
    no_disclosures: "No disclosure requests.", "Aucune demande de divulgation.";
    enrol: "Enrol a person", "Enregistrer une personne";
    consent: "Consent (e.g. signed intake form)", "Consentement (p. ex. formulaire signé)";
    retain_until: "Retain until (YYYY-MM-DD)", "Conserver jusqu'au (AAAA-MM-JJ)";
    enrol_button: "Enrol", "Enregistrer";
    search: "Search by case reference", "Chercher par référence";
    search_button: "Search", "Chercher";
    extractor: "Extractor", "Extracteur";
    enrolled: "Enrolled", "Enregistrée";
    erase: "Erase", "Effacer";
    erase_confirm: "I confirm this record is to be erased for good", "Je confirme l'effacement définitif de cette fiche";
    stale: "stale: enrol again", "périmée : à réenregistrer";
    liveness: "liveness", "détection de fraude (PAD)";
    no_records: "No records.", "Aucune fiche.";
    verify: "Verify the chain", "Vérifier la chaîne";
    chain_ok: "Audit chain verifies", "La chaîne d'audit est vérifiée";
    chain_bad: "Audit chain does NOT verify", "La chaîne d'audit n'est PAS vérifiée";
    entries: "entries", "entrées";
    entry: "Entry", "Entrée";
    filter: "Filter", "Filtrer";
    event: "Event", "Événement";
    export: "Export (JSON)", "Exporter (JSON)";
    roster_version: "Roster version", "Version de la liste des membres";
    policy_version: "Biometric policy version", "Version de la politique biométrique";
    signatures: "Steward signatures", "Signatures des intendants";
    connected: "connected", "connecté";
    not_connected: "not connected", "non connecté";
    this_node: "this node", "ce nœud";
    roles: "Roles", "Rôles";
    not_allowed: "Your role does not allow this.", "Votre rôle ne le permet pas.";
    bad_csrf: "This form is out of date or was not sent by the console; reload the page and try again.", "Ce formulaire est périmé ou ne vient pas de la console ; rechargez la page et réessayez.";
    error: "Refused", "Refusé";
    ok_enrolled: "Enrolled as record", "Enregistrée comme fiche";
    ok_published: "Alert published", "Alerte publiée";
    ok_withdrawn: "Alert withdrawn", "Alerte retirée";
    ok_requested: "Disclosure requested", "Divulgation demandée";
    ok_decided: "Decision recorded", "Décision enregistrée";
    ok_erased: "Record erased", "Fiche effacée";
    logged_in_as: "Signed in as", "Connecté en tant que";
    from_day: "From (YYYY-MM-DD)", "Du (AAAA-MM-JJ)";
    to_day: "To (YYYY-MM-DD)", "Au (AAAA-MM-JJ)";
    shown_of: "shown, of", "affichées sur";
    detail: "Detail", "Détail";
    older: "Older entries", "Entrées plus anciennes";
    pages: "Pages", "Pages";
    band: "Band", "Niveau";
    reach: "Reachable", "Joignable";
    unreachable_since: "not reachable since", "injoignable depuis";
    not_reached_since_start: "not reached since this node started,", "pas joint depuis le démarrage du nœud,";
    band_strong: "strong", "fort";
    band_probable: "probable", "probable";
    band_possible: "possible", "possible";
    of: "of", "sur";
    newer: "Newer", "Plus récentes";
    older_rows: "Older", "Plus anciennes";
    other_case: "Other case", "Autre dossier";
    cap_restriction: "For members of the federation of", "Réservé aux membres de la fédération de";
    export_csv: "Export (CSV)", "Exporter (CSV)";
    export_cap: "Export as CAP 1.2 alert", "Exporter en alerte CAP 1.2";
    cap_include_case_ref: "Include the case reference", "Inclure la référence du dossier";
    cap_description: "Public description (optional)", "Description publique (facultative)";
    cap_exercise: "Exercise (drill)", "Exercice";
    identify: "Identify", "Identifier";
    health: "Health", "État du nœud";
    health_intro: "The node's metrics, sampled in memory (lost at restart): samples", "Les métriques du nœud, échantillonnées en mémoire (perdues au redémarrage) : échantillons";
    every: "every", "toutes les";
    over_last: "over the last", "sur les dernières";
    latest: "Latest sample", "Dernier échantillon";
    plot_alerts: "Alerts held", "Alertes détenues";
    plot_hits: "Hits held", "Correspondances détenues";
    plot_outbox: "Outbox", "Boîte d'envoi";
    plot_peers: "Members connected", "Membres connectés";
    plot_commit: "Durable commit latency", "Latence des écritures durables";
    plot_lag: "Event-loop lag", "Retard de la boucle d'événements";
    alerts_unit: "alerts", "alertes";
    hits_unit: "hits", "correspondances";
    outbox_unit: "messages waiting", "messages en attente";
    peers_unit: "members", "membres";
    latency_unit: "ms (p99 red, mean blue)", "ms (p99 rouge, moyenne bleu)";
    minutes_ago: "minutes ago", "il y a (minutes)";
    commit_p99: "Commit latency p99", "Latence d'écriture p99";
    lag_p99: "Event-loop lag p99", "Retard de boucle p99";
    identify_intro: "An encrypted search of every member's gallery, made for one of your cases. The purpose and legal basis go to every member's audit; the case stays here.", "Une recherche chiffrée dans la galerie de chaque membre, pour l'un de vos dossiers. La finalité et la base légale vont dans l'audit de chaque membre ; le dossier reste ici.";
    case: "Case", "Dossier";
    no_cases: "A search is made for one of your cases: publish the case first (a found person's case too).", "Une recherche se fait pour l'un de vos dossiers : publiez d'abord le dossier (y compris pour une personne retrouvée).";
    purpose: "Purpose", "Finalité";
    legal_basis: "Legal basis", "Base légale";
    search_members: "Search every member", "Interroger tous les membres";
    outcome: "Outcome", "Résultat";
    n_matches: "match(es): see Hits", "correspondance(s) : voir Correspondances";
    timed_out: "no answer in time", "pas de réponse à temps";
    not_reachable: "not reachable", "injoignable";
    positions: "gallery positions compared", "positions de galerie comparées";
    search_for: "Search for case", "Recherche pour le dossier";
    no_members: "No member with the match role.", "Aucun membre avec le rôle de comparaison.";
}

/// The words for `lang` (English for anything unknown).
pub(crate) fn tr(lang: &str) -> &'static Tr {
    match lang {
        "fr" => &FR,
        _ => &EN,
    }
}
