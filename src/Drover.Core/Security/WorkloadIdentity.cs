using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;

namespace Drover.Core.Security;

/// <summary>
/// Machine identities carried in certificates as SPIFFE-style SAN URIs: <c>spiffe://drover/agent/{agentId}</c>
/// and <c>spiffe://drover/master/{host:port}</c>. Only certificates issued by the cluster CA are ever
/// read here (the TLS layer verified the chain first), so the URI is the identity.
/// </summary>
public static class WorkloadIdentity
{
    public const string TrustDomain = "spiffe://drover/";
    private const string SubjectAltNameOid = "2.5.29.17";

    public static Uri AgentUri(string agentId) => new(TrustDomain + "agent/" + Uri.EscapeDataString(agentId));

    public static Uri MasterUri(string address) => new(TrustDomain + "master/" + Uri.EscapeDataString(address));

    /// <summary>The agent or master a certificate names, or null when it names neither (or several).</summary>
    public static Caller? FromCertificate(X509Certificate2? certificate)
    {
        if (certificate is null)
        {
            return null;
        }

        Caller? found = null;
        foreach (var uri in SanUris(certificate))
        {
            if (!uri.StartsWith(TrustDomain, StringComparison.Ordinal))
            {
                continue;
            }

            var rest = uri[TrustDomain.Length..];
            Caller? caller = rest.StartsWith("agent/", StringComparison.Ordinal) ? new Caller(CallerKind.Agent, Uri.UnescapeDataString(rest["agent/".Length..]))
                : rest.StartsWith("master/", StringComparison.Ordinal) ? new Caller(CallerKind.Master, Uri.UnescapeDataString(rest["master/".Length..]))
                : null;
            if (caller is null || caller.Id.Length == 0)
            {
                continue;
            }

            if (found is not null && found != caller)
            {
                return null; // two identities in one certificate: trust neither
            }

            found = caller;
        }

        return found;
    }

    /// <summary>The URI entries (GeneralName [6]) of the certificate's subject alternative names.</summary>
    public static IEnumerable<string> SanUris(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var ext = certificate.Extensions[SubjectAltNameOid];
        if (ext is null)
        {
            return [];
        }

        var uris = new List<string>();
        try
        {
            var reader = new AsnReader(ext.RawData, AsnEncodingRules.DER);
            var names = reader.ReadSequence();
            var uriTag = new Asn1Tag(TagClass.ContextSpecific, 6);
            while (names.HasData)
            {
                var tag = names.PeekTag();
                if (tag.HasSameClassAndValue(uriTag))
                {
                    uris.Add(names.ReadCharacterString(UniversalTagNumber.IA5String, uriTag));
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

        return uris;
    }
}
