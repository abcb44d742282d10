using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;

namespace Drover.Core.Security.Pki;

/// <summary>What a Drover certificate speaks for.</summary>
public enum IdentityKind
{
    Agent,
    Master,
}

/// <summary>
/// The identity a Drover certificate carries, as a SPIFFE-style SAN URI: <c>spiffe://drover/agent/&lt;agentId&gt;</c>
/// for an agent, <c>spiffe://drover/master/&lt;host:port&gt;</c> for a master. A certificate names exactly one
/// such URI; one with none or several has no Drover identity (a certificate of any other CA never gets
/// this far: it is refused by the chain check first).
/// </summary>
public sealed record SpiffeId(IdentityKind Kind, string Name)
{
    public const string Scheme = "spiffe";
    public const string TrustDomain = "drover";
    private const string AgentPrefix = "spiffe://drover/agent/";
    private const string MasterPrefix = "spiffe://drover/master/";

    /// <summary>The OID of the subjectAltName extension (RFC 5280 4.2.1.6).</summary>
    private const string SubjectAltNameOid = "2.5.29.17";

    private static readonly Asn1Tag UriTag = new(TagClass.ContextSpecific, 6);

    public static SpiffeId Agent(string agentId) =>
        Ids.IsValidName(agentId) ? new(IdentityKind.Agent, agentId) : throw new ArgumentException($"'{agentId}' is not a valid agent id", nameof(agentId));

    public static SpiffeId Master(string address) =>
        IsValidMasterAddress(address) ? new(IdentityKind.Master, address) : throw new ArgumentException($"'{address}' is not HOST:PORT", nameof(address));

    /// <summary>The URI text, e.g. <c>spiffe://drover/agent/agent-0123</c>.</summary>
    public string Uri => (Kind == IdentityKind.Agent ? AgentPrefix : MasterPrefix) + Name;

    public override string ToString() => Uri;

    /// <summary>The caller this identity authenticates (for the security gate).</summary>
    public Caller ToCaller() => new(Kind == IdentityKind.Agent ? CallerKind.Agent : CallerKind.Master, Name);

    /// <summary>Parses the URI text; null when it is not a Drover identity.</summary>
    public static SpiffeId? TryParse(string? text)
    {
        if (text is null)
        {
            return null;
        }

        if (text.StartsWith(AgentPrefix, StringComparison.Ordinal))
        {
            var id = text[AgentPrefix.Length..];
            return Ids.IsValidName(id) ? new SpiffeId(IdentityKind.Agent, id) : null;
        }

        if (text.StartsWith(MasterPrefix, StringComparison.Ordinal))
        {
            var address = text[MasterPrefix.Length..];
            return IsValidMasterAddress(address) ? new SpiffeId(IdentityKind.Master, address) : null;
        }

        return null;
    }

    /// <summary>
    /// The single Drover identity in the certificate's subjectAltName, or null when it has none, several,
    /// or a malformed extension. Does not check the chain: callers verify it first (<see cref="CertificateVerifier"/>).
    /// </summary>
    public static SpiffeId? FromCertificate(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        SpiffeId? found = null;
        foreach (var uri in SubjectAltUris(certificate))
        {
            if (!uri.StartsWith(Scheme + "://", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var id = TryParse(uri);
            if (id is null || found is not null)
            {
                return null; // a malformed spiffe URI, or two of them: no identity rather than a guess
            }

            found = id;
        }

        return found;
    }

    /// <summary>Every uniformResourceIdentifier in the certificate's subjectAltName (.NET exposes DNS names and IPs only).</summary>
    public static IReadOnlyList<string> SubjectAltUris(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var uris = new List<string>();
        foreach (var extension in certificate.Extensions)
        {
            if (extension.Oid?.Value != SubjectAltNameOid)
            {
                continue;
            }

            try
            {
                var reader = new AsnReader(extension.RawData, AsnEncodingRules.DER);
                var names = reader.ReadSequence();
                while (names.HasData)
                {
                    var tag = names.PeekTag();
                    if (tag == UriTag)
                    {
                        uris.Add(names.ReadCharacterString(UniversalTagNumber.IA5String, UriTag));
                    }
                    else
                    {
                        names.ReadEncodedValue();
                    }
                }
            }
            catch (AsnContentException)
            {
                return [];
            }
        }

        return uris;
    }

    private static bool IsValidMasterAddress(string address)
    {
        var colon = address.LastIndexOf(':');
        if (colon <= 0 || colon == address.Length - 1 || address.Length > 300)
        {
            return false;
        }

        foreach (var c in address)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or ':' or '[' or ']' or '_'))
            {
                return false;
            }
        }

        return int.TryParse(address.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
            && port is >= 0 and <= 65535; // 0 only until the listener has bound its port (the certificate is then issued again)
    }
}
